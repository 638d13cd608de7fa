//! A real Mosquitto broker for the MQTT tests, and an MQTT peer that plays Home Assistant.
//!
//! [`Mosquitto`] runs `mosquitto` from `PATH` (or `/usr/sbin`, where Debian puts it; installed
//! by `scripts/bootstrap.sh --test`) with a generated configuration on a free 127.0.0.1 port,
//! optionally with a password file made by `mosquitto_passwd`. It is ready when it logs that it
//! runs, is killed when dropped, and can be stopped and started again on the same port (a
//! broker restart; without persistence it forgets every retained message).
//!
//! [`Observer`] subscribes to everything under the discovery prefix and Jarvis's base topic
//! and keeps each topic's last message and a log of all of them, so tests wait for a condition
//! instead of sleeping.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

use super::LIMIT;

/// The broker binary: `mosquitto` on `PATH`, else Debian's `/usr/sbin/mosquitto`.
fn binary(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        let sbin = Path::new("/usr/sbin").join(name);
        let bin = Path::new("/usr/bin").join(name);
        assert!(
            sbin.is_file() || bin.is_file(),
            "{name} not found: run scripts/bootstrap.sh --test (it installs mosquitto)"
        );
        if sbin.is_file() { sbin } else { bin }
    })
}

/// A running broker.
pub struct Mosquitto {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its TLS port, when started [`Mosquitto::with_tls`].
    pub tls_port: Option<u16>,
    child: Option<Child>,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Mosquitto {
    /// An anonymous broker.
    pub async fn start() -> Self {
        Self::launch(None, false).await
    }

    /// A broker that only lets `user` in with `password`.
    pub async fn with_user(user: &str, password: &str) -> Self {
        Self::launch(Some((user, password)), false).await
    }

    /// An anonymous broker with a second, TLS listener whose certificate (for `127.0.0.1` and
    /// `localhost`) is signed by a generated CA, written to [`Mosquitto::ca_file`].
    pub async fn with_tls() -> Self {
        Self::launch(None, true).await
    }

    /// The CA of the TLS listener.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A second broker bridged to the one on `port`: every topic both ways, retained messages
    /// and wills included, as the nodes of a clustered broker pass them on (with the delay of
    /// a hop).
    pub async fn bridged_to(port: u16) -> Self {
        let mut broker = Self::launch(None, false).await;
        broker.stop().await;
        let bridge = format!(
            "connection cluster-link\naddress 127.0.0.1:{port}\ntopic # both 1\n\
             cleansession true\nrestart_timeout 1\nbridge_protocol_version mqttv311\n"
        );
        let mut config = std::fs::read_to_string(&broker.config).unwrap();
        config.push_str(&bridge);
        std::fs::write(&broker.config, config).unwrap();
        broker.run().await;
        broker
    }

    async fn launch(credentials: Option<(&str, &str)>, tls: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let free_port = || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let port = free_port();
        let tls_port = tls.then(free_port);
        let mut config = format!(
            "listener {port} 127.0.0.1\npersistence false\nlog_dest stderr\nlog_type error\n\
             log_type warning\nlog_type notice\nlog_type information\n\
             # Keep root when the tests run as root (the password file is in a private dir).\n\
             user root\n"
        );
        match credentials {
            Some((user, password)) => {
                let file = dir.path().join("passwd");
                let status = std::process::Command::new(binary("mosquitto_passwd"))
                    .args(["-b", "-c"])
                    .arg(&file)
                    .args([user, password])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .expect("run mosquitto_passwd");
                assert!(status.success(), "mosquitto_passwd failed");
                config.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    file.display()
                ));
            }
            None => config.push_str("allow_anonymous true\n"),
        }
        if let Some(tls_port) = tls_port {
            write_certificates(dir.path());
            let file = |name: &str| dir.path().join(name).display().to_string();
            config.push_str(&format!(
                "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
                file("ca.pem"),
                file("server.pem"),
                file("server.key")
            ));
        }
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(&path, config).unwrap();
        let mut broker = Self {
            port,
            tls_port,
            child: None,
            dir,
            config: path,
        };
        broker.run().await;
        broker
    }

    async fn run(&mut self) {
        let mut child = Command::new(binary("mosquitto"))
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start mosquitto");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let ready = tokio::time::timeout(LIMIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                let running = line.contains(" running");
                seen.push(line);
                if running {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            matches!(ready, Ok(true)),
            "mosquitto did not start on port {}: {seen:?}",
            self.port
        );
        // Keep draining its log so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    /// Stops the broker (as a crash would: clients see the connection drop).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.run().await;
    }

    /// Where its files are.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 and localhost signed by it
/// (`server.pem`, `server.key`).
fn write_certificates(dir: &Path) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Test broker CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let leaf = params.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
}

/// One message the observer saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub topic: String,
    pub payload: String,
    pub retain: bool,
}

#[derive(Default)]
struct Book {
    last: HashMap<String, Seen>,
    log: Vec<Seen>,
    connects: usize,
}

/// An MQTT peer playing Home Assistant: sees everything, publishes birth messages and presses.
pub struct Observer {
    pub client: AsyncClient,
    book: Arc<Mutex<Book>>,
    changed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Observer {
    /// Connects to `port`, subscribes to `filters` and waits for the subscription.
    pub async fn connect(port: u16, filters: &[&str]) -> Self {
        Self::connect_as(port, filters, None).await
    }

    /// [`Observer::connect`] with credentials.
    pub async fn connect_as(port: u16, filters: &[&str], login: Option<(&str, &str)>) -> Self {
        let id = format!("observer-{}", std::process::id() ^ rand_u32());
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_max_packet_size(16 << 20, 16 << 20);
        options.set_keep_alive(Duration::from_secs(5));
        if let Some((user, password)) = login {
            options.set_credentials(user, password);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        for filter in filters {
            client.subscribe(*filter, QoS::AtLeastOnce).await.unwrap();
        }
        let book = Arc::new(Mutex::new(Book::default()));
        let changed = Arc::new(Notify::new());
        let subscribed = Arc::new(Notify::new());
        let wanted = filters.len();
        let filters: Vec<String> = filters.iter().map(|f| (*f).to_owned()).collect();
        let task = {
            let book = Arc::clone(&book);
            let resubscriber = client.clone();
            let changed = Arc::clone(&changed);
            let subscribed = Arc::clone(&subscribed);
            tokio::spawn(async move {
                let mut acks = 0;
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let seen = Seen {
                                topic: p.topic.clone(),
                                payload: String::from_utf8_lossy(&p.payload).into_owned(),
                                retain: p.retain,
                            };
                            let mut book = book.lock().unwrap();
                            book.last.insert(p.topic, seen.clone());
                            book.log.push(seen);
                            drop(book);
                            changed.notify_waiters();
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            acks += 1;
                            if acks == wanted {
                                subscribed.notify_one();
                            }
                        }
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            let connects = {
                                let mut book = book.lock().unwrap();
                                book.connects += 1;
                                book.connects
                            };
                            // A clean session forgets subscriptions: renew them after a reconnect.
                            if connects > 1 {
                                for filter in &filters {
                                    let _ = resubscriber.try_subscribe(filter, QoS::AtLeastOnce);
                                }
                            }
                            changed.notify_waiters();
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            })
        };
        tokio::time::timeout(LIMIT, subscribed.notified())
            .await
            .expect("observer subscribed in time");
        Self {
            client,
            book,
            changed,
            task,
        }
    }

    /// Waits until `check` returns `Some` on the messages seen so far (last per topic, and the
    /// whole log); fails the test after [`LIMIT`].
    pub async fn wait_for<T>(
        &self,
        what: &str,
        mut check: impl FnMut(&HashMap<String, Seen>, &[Seen]) -> Option<T>,
    ) -> T {
        let result = tokio::time::timeout(LIMIT, async {
            loop {
                let notified = self.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                {
                    let book = self.book.lock().unwrap();
                    if let Some(found) = check(&book.last, &book.log) {
                        return found;
                    }
                }
                notified.await;
            }
        })
        .await;
        match result {
            Ok(found) => found,
            Err(_) => {
                let book = self.book.lock().unwrap();
                let topics: Vec<_> = book.log.iter().rev().take(30).collect();
                panic!("timed out waiting for {what}; last messages: {topics:#?}")
            }
        }
    }

    /// Waits for `topic` to hold a payload matching `check`; returns it.
    pub async fn wait_topic(&self, topic: &str, check: impl Fn(&str) -> bool) -> String {
        self.wait_for(topic, |last, _| {
            last.get(topic)
                .filter(|s| check(&s.payload))
                .map(|s| s.payload.clone())
        })
        .await
    }

    /// Waits for `topic`'s payload as JSON satisfying `check`.
    pub async fn wait_json(
        &self,
        topic: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let payload = self
            .wait_topic(topic, |p| {
                serde_json::from_str::<serde_json::Value>(p).is_ok_and(|v| check(&v))
            })
            .await;
        serde_json::from_str(&payload).unwrap()
    }

    /// The last payload on `topic`.
    pub fn last(&self, topic: &str) -> Option<String> {
        self.book
            .lock()
            .unwrap()
            .last
            .get(topic)
            .map(|s| s.payload.clone())
    }

    /// Every topic's last message.
    pub fn snapshot(&self) -> HashMap<String, Seen> {
        self.book.lock().unwrap().last.clone()
    }

    /// How many messages so far (a mark for [`Observer::since`]).
    pub fn mark(&self) -> usize {
        self.book.lock().unwrap().log.len()
    }

    /// The messages after `mark`.
    pub fn since(&self, mark: usize) -> Vec<Seen> {
        self.book.lock().unwrap().log[mark..].to_vec()
    }

    /// Times the observer (re)connected.
    pub fn connects(&self) -> usize {
        self.book.lock().unwrap().connects
    }

    /// Waits until the observer has connected `n` times (after a broker restart).
    pub async fn wait_connects(&self, n: usize) {
        tokio::time::timeout(LIMIT, async {
            loop {
                let notified = self.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.connects() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("observer did not connect {n} times"));
    }

    /// Publishes a message (as Home Assistant or a stranger would).
    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .unwrap();
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let hash = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (hash & u64::from(u32::MAX)) as u32
}
