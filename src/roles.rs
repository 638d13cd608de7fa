//! `jarvis serve --role stt,tts,wake,brain`: which parts of Jarvis this process runs, so a GPU
//! box can serve only the speech engines while the brain's machine uses it as a backend.

/// One part of Jarvis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Speech-to-text.
    Stt,
    /// Text-to-speech.
    Tts,
    /// Wake word detection.
    Wake,
    /// The homelab brain: intents, Proxmox, MQTT entities, Frigate.
    Brain,
}

/// The roles this process runs; every one unless `--role` says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Speech-to-text.
    pub stt: bool,
    /// Text-to-speech.
    pub tts: bool,
    /// Wake word detection.
    pub wake: bool,
    /// The homelab brain.
    pub brain: bool,
}

impl Default for Roles {
    fn default() -> Self {
        Self {
            stt: true,
            tts: true,
            wake: true,
            brain: true,
        }
    }
}

impl Roles {
    /// The roles named (all of them when none are).
    pub fn of(roles: &[Role]) -> Self {
        if roles.is_empty() {
            return Self::default();
        }
        Self {
            stt: roles.contains(&Role::Stt),
            tts: roles.contains(&Role::Tts),
            wake: roles.contains(&Role::Wake),
            brain: roles.contains(&Role::Brain),
        }
    }

    /// Turns off in `config` what these roles leave out.
    pub fn apply(self, config: &mut crate::config::Config) {
        config.roles = self;
        if !self.stt {
            config.stt.enabled = false;
            config.stt.backends.clear();
        }
        if !self.tts {
            config.tts.enabled = false;
            config.tts.backends.clear();
        }
        if !self.wake {
            config.wake.enabled = false;
            config.wake.backends.clear();
        }
        if !self.brain {
            config.proxmox.enabled = false;
            config.mqtt.enabled = false;
            config.mqtt.lease.enabled = false;
            config.frigate.enabled = false;
            config.wyoming.advertise_intent = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_roles_means_all_and_a_speech_box_runs_no_brain() {
        assert_eq!(Roles::of(&[]), Roles::default());
        let speech = Roles::of(&[Role::Stt, Role::Tts]);
        assert!(speech.stt && speech.tts && !speech.wake && !speech.brain);
        let mut config = crate::config::Config::default();
        config.mqtt.enabled = true;
        speech.apply(&mut config);
        assert!(config.stt.enabled && !config.wake.enabled && !config.mqtt.enabled);
        assert!(!config.roles.brain);
    }
}
