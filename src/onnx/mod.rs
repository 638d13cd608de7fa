//! The one ONNX Runtime of the process, shared by text-to-speech (Piper) and the wake word
//! (openWakeWord).
//!
//! ONNX Runtime is loaded at run time (`ort` with `load-dynamic`), so building needs no download.
//! It is loaded once per process, from `tts.onnxruntime`, by whichever service starts first; the
//! other finds it loaded. Every session of every service then runs on that one library.

pub(crate) mod protobuf;
pub(crate) mod schema;

use std::path::Path;
use std::time::Duration;

use ort::environment::GlobalThreadPoolOptions;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

/// How long loading ONNX Runtime may take. ort 2.0.0-rc.12 deadlocks when `dlopen` fails (its
/// error path calls back into the loader), so a load that does not finish is a failed load.
const RUNTIME_LOAD_TIMEOUT: Duration = Duration::from_secs(20);

/// Loads ONNX Runtime from `path`, once per process. Later calls return the first call's result,
/// whatever path they name.
///
/// # Errors
/// Why the library could not be loaded, for people (the caller adds the path and the fix).
pub fn init_runtime(path: &Path) -> Result<(), String> {
    static RESULT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    RESULT
        .get_or_init(|| {
            check_library(path)?;
            let (done, wait) = std::sync::mpsc::channel();
            let owned = path.to_owned();
            std::thread::Builder::new()
                .name("ort-load".into())
                .spawn(move || {
                    let loaded = ort::init_from(&owned)
                        .and_then(|builder| {
                            let pool = GlobalThreadPoolOptions::default()
                                .with_intra_threads(cores())?
                                .with_thread_manager(PoolThreads)?;
                            Ok(builder.with_name("jarvis").with_global_thread_pool(pool))
                        })
                        .map(|builder| {
                            builder.commit();
                        });
                    let _ = done.send(loaded.map_err(|err| err.to_string()));
                })
                .map_err(|err| format!("cannot start the loader thread: {err}"))?;
            match wait.recv_timeout(RUNTIME_LOAD_TIMEOUT) {
                Ok(result) => result,
                Err(_) => {
                    Err("the library did not load (missing dependencies or a broken file?)".into())
                }
            }
        })
        .clone()
}

/// Starts the threads of the process's one pool (Piper's syntheses, batch work): named
/// `ort-pool` and at batch priority ([`crate::priority`]). Without it they would take the name
/// and priority of whichever thread first touched ONNX Runtime. The wake word's sessions run on
/// their own workers' threads instead, at the usual priority.
#[derive(Debug)]
struct PoolThreads;

impl ort::environment::ThreadManager for PoolThreads {
    type Thread = std::thread::JoinHandle<()>;

    fn create(&self, work: impl FnOnce() + Send + 'static) -> ort::Result<Self::Thread> {
        std::thread::Builder::new()
            .name("ort-pool".into())
            .spawn(move || {
                crate::priority::lower_current_thread();
                work();
            })
            .map_err(|err| ort::Error::new(format!("cannot start a pool thread: {err}")))
    }

    fn join(thread: Self::Thread) -> ort::Result<()> {
        thread
            .join()
            .map_err(|_| ort::Error::new("a pool thread panicked"))
    }
}

/// Catches the common mistakes (no file, a copied symlink, not a shared library) before the
/// loader sees them.
fn check_library(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(|err| err.to_string())?;
    file.read_exact(&mut magic)
        .map_err(|_| "the file is too short to be a library".to_owned())?;
    if &magic != b"\x7fELF" {
        return Err("not a shared library (a symlink copied as a text file?)".into());
    }
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// A session for a large model that runs now and then and should finish fast (a Piper voice):
/// every graph optimisation, on the process's one pool of a thread per core. Sessions share
/// that pool, so one session's idle threads never spin against another's work (a voice runs
/// as two sessions, one after the other). Loaded from a file: ONNX Runtime keeps less memory
/// for it than for a model given in memory. Call [`init_runtime`] first.
///
/// # Errors
/// ONNX Runtime's message.
pub fn pooled_session(model: &Path) -> Result<Session, String> {
    Session::builder()
        .map_err(|err| err.to_string())?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|err| err.to_string())?
        // A memory pattern is one block per input shape, kept for the next run of that shape;
        // a voice runs with a new shape for nearly every sentence and piece. Without patterns
        // the arena reuses its blocks: about 23 MB less held for a voice, at the same speed.
        .with_memory_pattern(false)
        .map_err(|err| err.to_string())?
        .commit_from_file(model)
        .map_err(|err| err.to_string())
}

/// A session for a small model that runs many times a second on one stream: one thread of its
/// own (the models are far too small to gain from more, and many streams run side by side on
/// their own workers), every graph optimisation. Call [`init_runtime`] first.
///
/// # Errors
/// ONNX Runtime's message.
pub fn single_thread_session(model: &[u8]) -> Result<Session, String> {
    Session::builder()
        .map_err(|err| err.to_string())?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|err| err.to_string())?
        .with_independent_thread_pool()
        .map_err(|err| err.to_string())?
        .with_intra_threads(1)
        .map_err(|err| err.to_string())?
        .with_inter_threads(1)
        .map_err(|err| err.to_string())?
        .commit_from_memory(model)
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_file_is_not_taken_for_a_library() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libonnxruntime.so");
        std::fs::write(&path, "libonnxruntime.so.1.24.2\n").unwrap();
        let err = check_library(&path).unwrap_err();
        assert!(err.contains("not a shared library"), "{err}");
        let err = check_library(&dir.path().join("missing.so")).unwrap_err();
        assert!(err.contains("No such file"), "{err}");
    }
}
