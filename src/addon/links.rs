//! The user's own models and voices: files in the add-on's config folder (`/config/whisper/`,
//! `/config/piper/`, `/config/wakeword/`, which is `addon_configs/<repo>_jarvis/` on the host)
//! are linked into the models folder at each start, so Jarvis offers them beside the downloaded
//! ones. Links whose file was removed are removed too; a downloaded file of the same name is
//! never replaced.

use std::path::{Path, PathBuf};

/// The folders linked, each into the models folder's folder of the same name.
pub const FOLDERS: &[&str] = &["whisper", "piper", "wakeword"];

/// What one pass did, for the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Linked {
    /// Links made or kept (`piper/de_DE-thorsten-high.onnx`).
    pub linked: Vec<String>,
    /// Links removed because their file is gone.
    pub removed: Vec<String>,
    /// Files not linked because the models folder has its own file of that name.
    pub shadowed: Vec<String>,
}

/// Links every file of `config/<folder>/` into `models/<folder>/`.
///
/// # Errors
/// A folder or link cannot be made or read.
pub fn link_custom_models(config: &Path, models: &Path) -> std::io::Result<Linked> {
    let mut done = Linked::default();
    for folder in FOLDERS {
        let source = config.join(folder);
        let target = models.join(folder);
        // Links made before whose file is gone (only links pointing into the config folder).
        if target.is_dir() {
            for entry in std::fs::read_dir(&target)? {
                let path = entry?.path();
                if let Ok(dest) = std::fs::read_link(&path) {
                    if dest.starts_with(config) && !dest.exists() {
                        std::fs::remove_file(&path)?;
                        done.removed.push(relative(folder, &path));
                    }
                }
            }
        }
        if !source.is_dir() {
            continue;
        }
        std::fs::create_dir_all(&target)?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&source)?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        for file in files {
            let Some(name) = file.file_name() else {
                continue;
            };
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let link = target.join(name);
            match std::fs::read_link(&link) {
                Ok(dest) if dest == file => {}
                Ok(_) => {
                    std::fs::remove_file(&link)?;
                    std::os::unix::fs::symlink(&file, &link)?;
                }
                Err(_) if link.exists() => {
                    done.shadowed.push(relative(folder, &link));
                    continue;
                }
                Err(_) => std::os::unix::fs::symlink(&file, &link)?,
            }
            done.linked.push(relative(folder, &link));
        }
    }
    Ok(done)
}

fn relative(folder: &str, path: &Path) -> String {
    format!(
        "{folder}/{}",
        path.file_name().unwrap_or_default().to_string_lossy()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_linked_and_unlinked_and_downloads_win() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let models = dir.path().join("models");
        std::fs::create_dir_all(config.join("piper")).unwrap();
        std::fs::create_dir_all(models.join("piper")).unwrap();
        std::fs::write(config.join("piper/de.onnx"), b"voice").unwrap();
        std::fs::write(config.join("piper/de.onnx.json"), b"{}").unwrap();
        std::fs::write(config.join("piper/joe.onnx"), b"mine").unwrap();
        std::fs::write(models.join("piper/joe.onnx"), b"downloaded").unwrap();

        let done = link_custom_models(&config, &models).unwrap();
        assert_eq!(done.linked, ["piper/de.onnx", "piper/de.onnx.json"]);
        assert_eq!(done.shadowed, ["piper/joe.onnx"]);
        assert_eq!(
            std::fs::read(models.join("piper/de.onnx")).unwrap(),
            b"voice"
        );
        assert_eq!(
            std::fs::read(models.join("piper/joe.onnx")).unwrap(),
            b"downloaded"
        );

        // Again: nothing changes; then the user removes a voice.
        assert_eq!(link_custom_models(&config, &models).unwrap(), done);
        std::fs::remove_file(config.join("piper/de.onnx")).unwrap();
        let done = link_custom_models(&config, &models).unwrap();
        assert_eq!(done.removed, ["piper/de.onnx"]);
        assert!(!models.join("piper/de.onnx").exists());
        assert!(std::fs::symlink_metadata(models.join("piper/de.onnx")).is_err());
    }
}
