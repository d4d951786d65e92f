//! The systemd service protocol for `Type=notify` units (sd_notify(3),
//! <https://www.freedesktop.org/software/systemd/man/sd_notify.html>): `READY=1` once `run`
//! has started, `WATCHDOG=1` while the pipeline is alive, `STOPPING=1` when it drains.
//!
//! Fed by `run` in `main` (when to say what) and by [`crate::app::Running`] (whether the
//! broker granted the subscriptions, whether a stage has ended); feeds the service manager
//! through the datagram socket named by `$NOTIFY_SOCKET`. Outside systemd (no
//! `$NOTIFY_SOCKET`, no `$WATCHDOG_USEC`) every call here does nothing, so a shell or a
//! container runs the daemon unchanged.

use std::future::Future;
use std::time::Duration;

/// How long `READY=1` waits for the broker to grant the subscriptions. A broker that is down
/// at boot must not fail the start (systemd's `TimeoutStartSec=` is 90 s by default, and with
/// `required = false` the daemon keeps reconnecting), so after this the daemon says it is
/// ready anyway and `/readyz` tells the rest.
pub const SUBSCRIBE_WAIT: Duration = Duration::from_secs(10);

/// How often the readiness wait looks at the session's state.
const SUBSCRIBE_POLL: Duration = Duration::from_millis(50);

/// Tells the service manager the daemon is stopping (`STOPPING=1`), so `systemctl status`
/// shows "deactivating" while the pipeline drains.
pub fn stopping() {
    send(&[sd_notify::NotifyState::Stopping]);
}

/// Tells the service manager the daemon has started, then keeps the watchdog fed while the
/// pipeline is alive; never returns (run it beside the shutdown signal in a `select!`).
///
/// `READY=1` is sent once `subscribed()` holds or after [`SUBSCRIBE_WAIT`], whichever comes
/// first; the caller has already opened the state, started the stages and bound HTTP.
/// `WATCHDOG=1` is sent every half of `$WATCHDOG_USEC` (as sd_watchdog_enabled(3) advises),
/// and only when two things hold: a task spawned on the runtime's workers ran within that
/// half-interval (the worker pool is not wedged), and `ended()` names no stage (no stage of
/// the pipeline has returned or panicked). When either fails, the pings stop and systemd
/// restarts the service after `WatchdogSec=`; the reason is logged once.
pub async fn supervise(
    subscribed: impl Fn() -> bool,
    ended: impl Fn() -> Option<&'static str>,
) -> std::convert::Infallible {
    let waited = tokio::time::timeout(SUBSCRIBE_WAIT, async {
        while !subscribed() {
            tokio::time::sleep(SUBSCRIBE_POLL).await;
        }
    })
    .await;
    let status = if waited.is_ok() {
        "running: subscribed to the broker"
    } else {
        "running: not yet subscribed to the broker (see /readyz)"
    };
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        tracing::info!(status, "telling systemd the service is ready");
    }
    send(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ]);
    let Some(timeout) = sd_notify::watchdog_enabled() else {
        return std::future::pending().await;
    };
    watchdog(timeout / 2, ended).await
}

/// Feeds the watchdog every `every` while the runtime schedules tasks and no stage ended.
async fn watchdog(
    every: Duration,
    ended: impl Fn() -> Option<&'static str>,
) -> std::convert::Infallible {
    // At least 10 ms, so a tiny $WATCHDOG_USEC cannot turn this into a busy loop.
    let every = every.max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut withheld = false;
    loop {
        tick.tick().await;
        let why = match ended() {
            Some(stage) => Some(format!("the {stage} stage has ended")),
            None if !runs_a_task(every).await => {
                Some("the runtime's workers did not run a task in time".to_string())
            }
            None => None,
        };
        match why {
            None => {
                withheld = false;
                send(&[sd_notify::NotifyState::Watchdog]);
            }
            Some(why) if !withheld => {
                withheld = true;
                tracing::error!(
                    reason = %why,
                    "watchdog pings withheld: systemd restarts the service after WatchdogSec"
                );
            }
            Some(_) => {}
        }
    }
}

/// Whether a task spawned on the runtime's worker pool runs within `limit`.
fn runs_a_task(limit: Duration) -> impl Future<Output = bool> {
    let task = tokio::spawn(async {});
    async move { matches!(tokio::time::timeout(limit, task).await, Ok(Ok(()))) }
}

/// Sends `state` to `$NOTIFY_SOCKET` when it is set. A failed send is logged, not fatal: the
/// service manager then acts on its own timeouts, which is the protocol's intent.
fn send(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify the service manager ($NOTIFY_SOCKET)");
    }
}
