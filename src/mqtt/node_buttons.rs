//! A node's buttons: Reboot, Shut down, Start all and Stop all, on each node's device, and its
//! Last action sensor that shows what came of the last press.
//!
//! Every one of them is disabled by default (`en: false`): each takes guests down or starts many
//! at once, so a user turns a button on deliberately before a tap can do anything. A press is
//! `<base>/node/<node slug>/command` with the action as payload (see [`super::command`]); the
//! publisher hands it to the brain as an `Action::Node` on the `mqtt` channel, where the policy
//! weighs it as it weighs the same words said: read-only mode, `policy.channels.mqtt`,
//! `policy.protected_nodes` and the node that runs Home Assistant or Jarvis, protected guests
//! (a reboot or shutdown of a node that runs one is refused; stop-all leaves them running), and
//! the audit log. The press itself is the confirmation, as for a guest's buttons.

use crate::proxmox::NodeAction;

use super::discovery::Builder;

/// The button of `action`: its component key (also its payload), name and icon.
fn button(action: NodeAction) -> (&'static str, &'static str, &'static str) {
    match action {
        NodeAction::Reboot => ("reboot", "Reboot", "mdi:restart"),
        NodeAction::Shutdown => ("shutdown", "Shut down", "mdi:power"),
        NodeAction::StartAll => ("start_all", "Start all guests", "mdi:play-box-multiple"),
        NodeAction::StopAll => ("stop_all", "Stop all guests", "mdi:stop-circle-outline"),
    }
}

/// A node's Last action sensor (reading `action`) and its four buttons (pressing on
/// `command`), all buttons disabled by default.
pub(super) fn components<'a>(b: &mut Builder<'a>, command: &'a str, action: &'a str) {
    // Retained and changed only by presses: it must not expire.
    let mut last = b.base("sensor", "last_action", "Last action");
    last.stat_t = Some(action);
    last.val_tpl = Some("{{ value_json.reply }}");
    last.json_attr_t = Some(action);
    last.ic = Some("mdi:history");
    b.push("last_action", last);
    for node_action in NodeAction::ALL {
        let (key, name, icon) = button(node_action);
        let mut c = b.base("button", key, name);
        c.cmd_t = Some(command);
        c.pl_prs = Some(node_action.as_str());
        c.en = Some(false);
        c.dev_cla = (node_action == NodeAction::Reboot).then_some("restart");
        c.ic = Some(icon);
        b.push(key, c);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::Value;

    use super::*;
    use crate::mqtt::discovery::{Common, Naming, node_config};
    use crate::proxmox::{Node, NodeState};

    #[test]
    fn every_node_button_is_disabled_by_default_and_pressed_on_its_own_topic() {
        let naming = Naming::new("homeassistant", "jarvis", "homelab");
        let node = Node {
            name: "pve".into(),
            status: NodeState::Online,
            cpu: None,
            maxcpu: None,
            mem: None,
            maxmem: None,
            disk: None,
            maxdisk: None,
            uptime: None,
        };
        let config: Value = serde_json::from_str(&node_config(
            &naming,
            &Common { expire_after: 615 },
            &node,
            None,
        ))
        .unwrap();
        let cmps = &config["cmps"];
        for action in NodeAction::ALL {
            let (key, _, _) = button(action);
            let c = &cmps[key];
            assert_eq!(c["p"], "button", "{key}");
            assert_eq!(c["en"], false, "{key}");
            assert_eq!(c["cmd_t"], "jarvis/node/pve/command", "{key}");
            assert_eq!(c["pl_prs"], action.as_str(), "{key}");
            assert_eq!(c["uniq_id"], format!("jarvis_homelab_node_pve_{key}"));
            assert_eq!(c["default_entity_id"], format!("button.pve_{key}"));
            assert!(c.get("exp_aft").is_none());
        }
        assert_eq!(cmps["reboot"]["dev_cla"], "restart");
        assert_eq!(cmps["last_action"]["stat_t"], "jarvis/node/pve/action");
        assert!(cmps["last_action"].get("exp_aft").is_none());
        assert_eq!(
            cmps["last_action"]["default_entity_id"],
            "sensor.pve_last_action"
        );
    }
}
