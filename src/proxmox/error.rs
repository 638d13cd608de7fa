//! Why a Proxmox request failed, in words that say what to do next.
//!
//! `Display` is the full, actionable text for logs and the HTTP API; [`ProxmoxError::spoken`]
//! is one short sentence for a voice reply. No variant holds the token secret: the client never
//! puts it anywhere but the `Authorization` header.

use std::time::Duration;

/// A failed Proxmox call. Cloneable, so callers sharing one in-flight request all get the error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxmoxError {
    /// 401: the token id or secret is wrong, or the token expired or was deleted.
    #[error(
        "the API token was rejected (Proxmox answered 401 for {token_id:?}): check \
         proxmox.token_id and the secret (proxmox.token_secret, token_secret_file or \
         JARVIS_PROXMOX_TOKEN_SECRET), and that the token still exists and has not expired \
         (Datacenter > Permissions > API Tokens)"
    )]
    Unauthorized {
        /// The token id that was sent (not the secret).
        token_id: String,
    },
    /// 403: the token lacks a privilege.
    #[error(
        "Proxmox refused {path} (403: {message}): the token {token_id:?} needs {hint}. A token \
         with privilege separation needs the ACL itself: pveum acl modify <path> --tokens '{token_id}' \
         --roles <role>"
    )]
    Forbidden {
        /// The API path, e.g. `/nodes/pve/status`.
        path: String,
        /// Proxmox's own text, usually naming the privilege (`Permission check failed
        /// (/vms/101, VM.PowerMgmt)`).
        message: String,
        /// The token id.
        token_id: String,
        /// Which privilege the call needs, from §4.2 of the integration notes.
        hint: String,
    },
    /// Any other error status (500 `VM is locked`, 595/596 when a node cannot reach another).
    #[error("Proxmox answered {path} with {status}: {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Proxmox's text (body `message`/`errors`, or the reason phrase).
        message: String,
        /// The API path.
        path: String,
    },
    /// No answer in time.
    #[error(
        "Proxmox did not answer {path} within {}s (last tried {url}): the node may be overloaded \
         or a storage may hang; raise proxmox.timeout_secs if it is just slow",
        .after.as_secs_f32()
    )]
    Timeout {
        /// The API path.
        path: String,
        /// The node URL that timed out last.
        url: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// No node could be reached.
    #[error(
        "no Proxmox node could be reached (tried {}): {cause}. Check that the nodes are up and \
         that proxmox.urls point at their API (https://<node>:8006)",
        .tried.join(", ")
    )]
    Unreachable {
        /// Every URL tried, in order.
        tried: Vec<String>,
        /// The last connection error.
        cause: String,
    },
    /// The certificate was refused.
    #[error("{}", tls_text(url, seen.as_deref(), message))]
    Tls {
        /// The node URL.
        url: String,
        /// The SHA-256 fingerprint the node presented, when a pin did not match it.
        seen: Option<String>,
        /// What rustls said.
        message: String,
    },
    /// The answer was not the JSON Proxmox documents.
    #[error(
        "Proxmox answered {path} with something Jarvis cannot read ({message}); is the URL a \
         Proxmox VE node, and is its version supported?"
    )]
    Decode {
        /// The API path.
        path: String,
        /// What did not parse.
        message: String,
    },
    /// The configuration cannot work (no secret, unreadable CA file, ...).
    #[error("proxmox configuration: {0}")]
    Config(String),
}

fn tls_text(url: &str, seen: Option<&str>, message: &str) -> String {
    match seen {
        Some(seen) => format!(
            "the certificate of {url} has the SHA-256 fingerprint {seen}, which is not in \
             proxmox.fingerprints. If the certificate was renewed, check the new fingerprint on \
             the node (System > Certificates, or `pvenode cert info`) and, if it matches, put it \
             in proxmox.fingerprints; otherwise someone may be intercepting the connection"
        ),
        None => format!(
            "the TLS connection to {url} failed ({message}). For the self-signed Proxmox \
             certificate, set proxmox.ca_file to a copy of /etc/pve/pve-root-ca.pem or pin the \
             node's fingerprint in proxmox.fingerprints"
        ),
    }
}

impl ProxmoxError {
    /// One short sentence for a voice reply.
    pub fn spoken(&self) -> String {
        match self {
            Self::Unauthorized { .. } => "Proxmox rejected my API token.".into(),
            Self::Forbidden { .. } => "Proxmox says I'm not allowed to do that.".into(),
            Self::Server { message, .. } => {
                let short = first_sentence(message);
                if short.is_empty() {
                    "Proxmox reported an error.".into()
                } else {
                    format!("Proxmox says: {short}.")
                }
            }
            Self::Timeout { .. } => "Proxmox is taking too long to answer.".into(),
            Self::Unreachable { .. } => "I can't reach Proxmox right now.".into(),
            Self::Tls { .. } => "I can't verify Proxmox's certificate.".into(),
            Self::Decode { .. } => "Proxmox sent an answer I don't understand.".into(),
            Self::Config(_) => "The Proxmox connection isn't configured correctly.".into(),
        }
    }

    /// Whether trying the same read again may help (the node was down, slow, or failed
    /// internally). Authentication, permission, certificate and decoding errors stay.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Unreachable { .. } => true,
            Self::Server { status, .. } => *status >= 500,
            Self::Unauthorized { .. }
            | Self::Forbidden { .. }
            | Self::Tls { .. }
            | Self::Decode { .. }
            | Self::Config(_) => false,
        }
    }
}

/// The first sentence of a Proxmox message, without a trailing period and capped for speech.
fn first_sentence(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default().trim();
    let line = line.trim_end_matches('.');
    if line.chars().count() <= 120 {
        line.to_owned()
    } else {
        let cut: String = line.chars().take(117).collect();
        format!("{cut}...")
    }
}

/// Which privilege a path needs (§4.2), for [`ProxmoxError::Forbidden`].
pub(crate) fn privilege_hint(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["cluster", "resources", ..] => {
            "VM.Audit on /vms, Sys.Audit on /nodes and Datastore.Audit on /storage to see \
             everything (the PVEAuditor role on / has them)"
                .into()
        }
        ["cluster", "status"] => "Sys.Audit on / (the PVEAuditor role has it)".into(),
        ["cluster", "tasks"] => "Sys.Audit on /nodes to see tasks other users started".into(),
        ["nodes", _, "storage", storage, ..] => format!("Datastore.Audit on /storage/{storage}"),
        ["nodes", node, "status"] => format!("Sys.Audit on /nodes/{node}"),
        ["nodes", node, "apt", ..] => format!(
            "the privilege Proxmox names above on /nodes/{node} (the package list needs more than \
             Sys.Audit on some versions)"
        ),
        ["nodes", node, "tasks", ..] => format!("Sys.Audit on /nodes/{node}"),
        ["nodes", node, "disks", ..] => format!("Sys.Audit on /nodes/{node}"),
        ["nodes", _, "qemu" | "lxc", vmid, "status", action] if !matches!(*action, "current") => {
            format!("VM.PowerMgmt on /vms/{vmid} (or on /)")
        }
        ["nodes", _, "qemu" | "lxc", vmid, ..] => format!("VM.Audit on /vms/{vmid}"),
        _ => "the privilege Proxmox names above".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_follow_the_permission_table() {
        assert!(privilege_hint("/cluster/status").contains("Sys.Audit on /"));
        assert_eq!(
            privilege_hint("/nodes/pve/status"),
            "Sys.Audit on /nodes/pve"
        );
        assert!(
            privilege_hint("/nodes/pve/qemu/101/status/start").contains("VM.PowerMgmt on /vms/101")
        );
        assert!(privilege_hint("/nodes/pve/lxc/102/status/current").contains("VM.Audit"));
        assert_eq!(
            privilege_hint("/nodes/pve/storage/nas/content?content=backup"),
            "Datastore.Audit on /storage/nas"
        );
        assert_eq!(
            privilege_hint("/nodes/pve/tasks?typefilter=vzdump&since=1"),
            "Sys.Audit on /nodes/pve"
        );
    }

    #[test]
    fn spoken_is_short_and_display_is_actionable() {
        let err = ProxmoxError::Unreachable {
            tried: vec!["https://a:8006".into(), "https://b:8006".into()],
            cause: "connection refused".into(),
        };
        assert_eq!(err.spoken(), "I can't reach Proxmox right now.");
        let text = err.to_string();
        assert!(text.contains("https://a:8006, https://b:8006"), "{text}");
        assert!(text.contains("proxmox.urls"), "{text}");

        let err = ProxmoxError::Server {
            status: 500,
            message: "VM 101 is locked (backup)\n".into(),
            path: "/nodes/pve/qemu/101/status/start".into(),
        };
        assert_eq!(err.spoken(), "Proxmox says: VM 101 is locked (backup).");
        assert!(err.is_transient());
        let err = ProxmoxError::Unauthorized {
            token_id: "jarvis@pve!ha".into(),
        };
        assert!(err.to_string().contains("proxmox.token_id"));
        assert!(!err.is_transient());
    }
}
