//! Batch work runs below the threads that answer requests.
//!
//! A whisper decode or a Piper synthesis keeps every core busy for a few hundred milliseconds;
//! an HTTP command, an MQTT poll or a wake-word chunk needs a fraction of a millisecond. At the
//! same priority, on a machine with two cores, the short work shares the cores evenly with the
//! long one (the p99 of HTTP commands tripled under the soak's load, issue #18). So the threads
//! that decode and synthesize (and build the speech grammar) lower their own priority
//! ([`BATCH_NICE`]) when they start; the threads they start themselves (ggml's compute threads,
//! started for each graph, and ONNX Runtime's pool) inherit it. The long work still gets every
//! core the short work leaves idle, so it takes as long as before when nothing else runs.
//! The wake word's workers, which must keep up with 20 streams but need little at a time, sit
//! in between ([`stream_nice`]).
//!
//! A nice value sets a thread's share of the CPU, not how soon a thread that wakes gets a core:
//! on the kernel the soak runs on (6.18, EEVDF, no wake-up preemption, 250 Hz ticks) a request
//! that wakes behind a lowered thread still waits for that thread's slice to end, up to a tick.
//! `perf sched` during the soak: the tokio workers' wake-up delay p99 1.2 ms, max 15 ms, and
//! 71 % of the delays over 0.5 ms spent behind the wake word's workers. Tried against it and not
//! kept (interleaved 10-minute soaks, HTTP no faster): the wake workers yielding between steps,
//! and a 0.1 ms EEVDF slice on the tokio workers (`sched_setattr`, set from outside).
//!
//! Tried and not kept: batch threads under `SCHED_IDLE` as well, so that a request that wakes
//! takes the core from them at once instead of after their time slice. In the 30-minute soak
//! the HTTP p99 moved from 3.2-7.0 to 2.7-5.2 ms, within the noise between runs, and a
//! synthesis under `SCHED_IDLE` waits for any other busy thread on the machine (in the HA
//! add-on: Home Assistant itself), where nice 10 still has a tenth of the CPU.
//!
//! Linux only: there a nice value belongs to one thread (`setpriority(PRIO_PROCESS, 0, ..)`
//! names the calling thread). Elsewhere the same call would lower the whole process, so it does
//! nothing.

/// The nice value of batch threads: their CPU share against a thread at 0 is a tenth (the
/// kernel's weights for nice 10 and 0 are 110 and 1024), so a request's few hundred microseconds
/// of work go first, while a decode alone on an idle machine still runs at full speed.
/// `JARVIS_BATCH_NICE` (0 to 19) sets another; 0 leaves batch threads as they are.
pub const BATCH_NICE: i32 = 10;

/// [`BATCH_NICE`], or `JARVIS_BATCH_NICE` where it is set to a nice value.
pub fn batch_nice() -> i32 {
    static NICE: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *NICE.get_or_init(|| {
        std::env::var("JARVIS_BATCH_NICE")
            .ok()
            .and_then(|v| v.trim().parse::<i32>().ok())
            .filter(|n| (0..=19).contains(n))
            .unwrap_or(BATCH_NICE)
    })
}

/// The nice value of threads that keep up with streams in real time (the wake word's workers):
/// half of [`batch_nice`]. A request's work goes before a stream's chunk (the weights for 5 and
/// 0 are 335 and 1024), and a chunk before a decode, which has the least urgent deadline.
pub fn stream_nice() -> i32 {
    batch_nice() / 2
}

/// Lowers the calling thread (and the threads it starts from now on) to [`batch_nice`]. A
/// thread can lower its own priority without privileges but not raise it again: call it only on
/// threads that do nothing but batch work. Failure is logged and otherwise ignored (the work
/// runs at the priority it had).
pub fn lower_current_thread() {
    lower_current_thread_to(batch_nice());
}

/// Lowers the calling thread (and the threads it starts from now on) to `nice`, as
/// [`lower_current_thread`] does; a thread already at `nice` or below is left as it is.
pub fn lower_current_thread_to(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        if current_nice() >= nice {
            return;
        }
        if let Err(err) = rustix::process::setpriority_process(None, nice) {
            tracing::debug!(%err, "cannot lower this thread's priority; it runs at its own");
        }
    }
}

/// Runs `work` on a thread of its own at [`batch_nice`] and returns what it returns, for batch
/// work that arrives on a shared thread (whose priority could not be raised again afterwards).
/// Starting a thread costs tens of microseconds, nothing next to a synthesis. A panic in
/// `work` goes on in the caller.
///
/// # Errors
/// The thread could not be started (the system is out of threads or memory).
pub fn run_lowered<T: Send>(name: &str, work: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn_scoped(scope, || {
                lower_current_thread();
                work()
            })?;
        Ok(thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

/// The nice value of the calling thread (0 where it cannot be read, or off Linux).
pub fn current_nice() -> i32 {
    #[cfg(target_os = "linux")]
    {
        rustix::process::getpriority_process(None).unwrap_or(0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_batch_thread_is_lowered_and_its_children_inherit_while_others_are_not() {
        let before = current_nice();
        let (own, child) = std::thread::spawn(|| {
            lower_current_thread();
            let own = current_nice();
            let child = std::thread::spawn(current_nice).join().unwrap();
            (own, child)
        })
        .join()
        .unwrap();
        assert_eq!(own, batch_nice().max(before));
        assert_eq!(
            child, own,
            "a thread started by a batch thread inherits its priority"
        );
        assert_eq!(
            current_nice(),
            before,
            "the caller's own priority is untouched"
        );
    }

    #[test]
    fn a_stream_thread_sits_between_requests_and_batch_work() {
        let before = current_nice();
        let own = std::thread::spawn(|| {
            lower_current_thread_to(stream_nice());
            current_nice()
        })
        .join()
        .unwrap();
        assert_eq!(own, stream_nice().max(before));
        if before == 0 && batch_nice() >= 2 {
            assert!(before < stream_nice() && stream_nice() < batch_nice());
        }
    }

    #[test]
    fn lowered_work_returns_its_result_and_leaves_the_caller_as_it_was() {
        let before = current_nice();
        let mut seen = Vec::new();
        let nice = run_lowered("batch-test", || {
            seen.push(1);
            current_nice()
        })
        .unwrap();
        assert_eq!(nice, batch_nice().max(before));
        assert_eq!(seen, [1], "the work borrows from the caller");
        assert_eq!(current_nice(), before);
    }
}
