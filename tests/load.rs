//! The load run, short enough for CI: many concurrent mutual-TLS clients driving the mixed
//! workload of `support::load` (the same mix the 10-minute `cargo bench --bench load` runs)
//! through the real gateway to the test daemon. What must hold under load: not one unexpected
//! answer, every kind of operation and stream served, and afterwards nothing held open by the
//! gateway and nothing left on the daemon. Timings and RSS are printed, never asserted.

use std::time::Duration;

use crate::support::gateway::Gateway;
use crate::support::load::{fds_after_settling, raise_fd_limit, Fds, Load, Plan, FD_SLACK};

const CLIENTS: usize = 160;
const DURATION: Duration = Duration::from_secs(35);
/// How long closed connections may take to be torn down on a busy machine, and the gateway's
/// idle daemon connections (10 s idle timeout, checked as often) to be closed.
const SETTLE: Duration = Duration::from_secs(60);

#[test]
fn a_mixed_load_gets_no_errors_and_leaves_nothing_open_or_behind() {
    // Each client holds up to two sockets; the gateway inherits the limit.
    raise_fd_limit(4 * CLIENTS as u64 + 1024);
    let gw = Gateway::start();
    let plan = Plan {
        // 7 identities, two of them `ci`.
        clients_per_identity: 25,
        sample_every: Duration::from_secs(5),
        ..Plan::new(CLIENTS, DURATION)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let load = rt
        .block_on(Load::start(&gw, &plan))
        .unwrap_or_else(|f| panic!("setting up the load run: {f}"));
    let baseline = Fds::of(gw.pid()).expect("the gateway's fds");

    let report = rt.block_on(load.run(&plan, gw.pid()));
    let md = report.markdown();
    eprintln!("{md}");
    assert_eq!(report.errors(), 0, "errors under load\n{md}");
    for op in [
        "ping",
        "list",
        "inspect",
        "lifecycle",
        "exec",
        "logs -f",
        "events",
        "archive put",
        "archive get",
    ] {
        assert!(report.count(op) > 0, "no {op} completed\n{md}");
    }

    let failures = rt.block_on(load.stop());
    assert!(failures.is_empty(), "removing the tickers: {failures:?}");
    drop(rt);

    // Every connection the clients opened is closed, nothing else the load made the gateway open
    // stays open, and the daemon connections the load's bursts left idle are closed too.
    let settled = |fds: &Fds| {
        fds.tcp == 0 && fds.other() <= baseline.other() + FD_SLACK && fds.unix <= baseline.unix
    };
    let fds = fds_after_settling(gw.pid(), settled, SETTLE);
    eprintln!("after the load: {fds:?}; before it: {baseline:?}");
    assert_eq!(
        fds.tcp, 0,
        "client connections still open after the load\n{md}"
    );
    assert!(
        fds.other() <= baseline.other() + FD_SLACK,
        "the gateway holds {} descriptors other than sockets after the load, {} before it\n{md}",
        fds.other(),
        baseline.other()
    );
    assert!(
        fds.unix <= baseline.unix,
        "the gateway keeps {} connections to the daemon after the load, {} before it\n{md}",
        fds.unix,
        baseline.unix
    );
    let left = load.leftovers();
    assert!(left.is_empty(), "containers left on the daemon: {left:?}");
}
