//! The figures of a fault run, printed at its end: the seed to replay it, rounds, faults by
//! kind, what was checked, and every violation.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::checks::{Checks, Verdict, Violation};
use super::ledger::{Ledger, Outcome};
use super::plan::Topology;

pub struct Report {
    pub topology: Topology,
    pub seed: u64,
    pub checks: Checks,
    pub rounds: u64,
    pub elapsed: Duration,
    pub settle: Duration,
    pub faults: BTreeMap<&'static str, u64>,
    pub skipped: BTreeMap<&'static str, u64>,
    /// (accepted, refused, no answer)
    pub sends: (usize, usize, usize),
    pub campaigns: (usize, usize),
    pub inbound: (usize, usize),
    pub relinks: u64,
    pub numbers_added: u64,
    pub numbers: usize,
    pub verdict: Verdict,
    /// Every violation found by this settle or an earlier one of the same world.
    pub violations: Vec<Violation>,
    /// Where the logs and data dirs were kept (when anything was violated, or asked for).
    pub logs: Option<PathBuf>,
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        topology: Topology,
        seed: u64,
        checks: Checks,
        l: &Ledger,
        verdict: Verdict,
        violations: Vec<Violation>,
        elapsed: Duration,
        settle: Duration,
        logs: Option<PathBuf>,
    ) -> Report {
        let count = |f: &dyn Fn(&Outcome) -> bool, o: &mut dyn Iterator<Item = &Outcome>| {
            o.filter(|o| f(o)).count()
        };
        let accepted = |o: &Outcome| matches!(o, Outcome::Accepted(_));
        let refused = |o: &Outcome| matches!(o, Outcome::Refused(..));
        let none = |o: &Outcome| matches!(o, Outcome::NoAnswer);
        Report {
            topology,
            seed,
            checks,
            rounds: l.rounds,
            elapsed,
            settle,
            faults: l.faults.clone(),
            skipped: l.skipped.clone(),
            sends: (
                count(&accepted, &mut l.sends.iter().map(|s| &s.outcome)),
                count(&refused, &mut l.sends.iter().map(|s| &s.outcome)),
                count(&none, &mut l.sends.iter().map(|s| &s.outcome)),
            ),
            campaigns: (
                count(&accepted, &mut l.campaigns.iter().map(|c| &c.outcome)),
                l.campaigns.iter().filter(|c| c.canceled).count(),
            ),
            inbound: (
                count(&accepted, &mut l.inbound.iter().map(|c| &c.outcome)),
                l.inbound.len() - count(&accepted, &mut l.inbound.iter().map(|c| &c.outcome)),
            ),
            relinks: l.relinks,
            numbers_added: l.numbers_added,
            numbers: l.numbers.len(),
            verdict,
            violations,
            logs,
        }
    }

    pub fn faults_total(&self) -> u64 {
        self.faults.values().sum()
    }
}

fn list(f: &mut fmt::Formatter<'_>, title: &str, items: &[String]) -> fmt::Result {
    if items.is_empty() {
        return Ok(());
    }
    writeln!(f, "  {title} ({}):", items.len())?;
    for i in items.iter().take(20) {
        writeln!(f, "    - {i}")?;
    }
    if items.len() > 20 {
        writeln!(f, "    … and {} more", items.len() - 20)?;
    }
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.verdict;
        writeln!(
            f,
            "== fault run, {} world: seed {} (replay with BZAPPER_FAULT_SEED={})",
            self.topology.name(),
            self.seed,
            self.seed
        )?;
        writeln!(
            f,
            "  rounds: {}, elapsed {:.0?} (last settle {:.1?})",
            self.rounds, self.elapsed, self.settle
        )?;
        let faults: Vec<String> = self.faults.iter().map(|(k, n)| format!("{k} {n}")).collect();
        writeln!(f, "  faults injected: {} ({})", self.faults_total(), faults.join(", "))?;
        if !self.skipped.is_empty() {
            let s: Vec<String> = self.skipped.iter().map(|(k, n)| format!("{k} {n}")).collect();
            writeln!(
                f,
                "  faults drawn that did not apply (number not connected, none linked): {}",
                s.join(", ")
            )?;
        }
        writeln!(
            f,
            "  workload: sends {} accepted / {} refused / {} unanswered; campaigns {} ({} canceled); inbound {} delivered by the network ({} refused: number not connected)",
            self.sends.0, self.sends.1, self.sends.2, self.campaigns.0, self.campaigns.1, self.inbound.0, self.inbound.1
        )?;
        writeln!(
            f,
            "  operator: {} numbers in all, {} added, {} scanned again after a logout",
            self.numbers, self.numbers_added, self.relinks
        )?;
        writeln!(
            f,
            "  checked: {} messages ({} of campaigns), {} on the network, {} events, {} inbound, {} webhook deliveries (event x webhook; {} redelivered requests), {} due alerts, {} numbers",
            v.messages_checked, v.campaign_messages_checked, v.network_messages_checked, v.events_checked, v.inbound_checked,
            v.deliveries_checked, v.redelivered, v.alerts_checked, v.numbers_checked
        )?;
        writeln!(
            f,
            "  enforced: inbound exactly once {}, alerts durable {}, ban expiry durable {} (BZAPPER_FAULT_ENFORCE)",
            self.checks.inbound_exactly_once, self.checks.alerts_durable, self.checks.ban_expiry_durable
        )?;
        list(f, "documented two-number case (docs/sending.md, Crashes)", &v.two_number)?;
        list(f, "failed although on the network (in doubt at a crash)", &v.failed_but_on_network)?;
        list(
            f,
            "`sending` recorded after the number's ban/logout event",
            &v.sending_after_drop_event,
        )?;
        let not_enforced: Vec<String> =
            v.not_enforced.iter().map(|x| format!("[{}] {}", x.invariant, x.detail)).collect();
        list(f, "found by checks not enforced yet", &not_enforced)?;
        writeln!(f, "  VIOLATIONS: {}", self.violations.len())?;
        for x in &self.violations {
            writeln!(f, "    - [{}] {}", x.invariant, x.detail)?;
        }
        if let Some(dir) = &self.logs {
            writeln!(f, "  logs and data dirs kept in {}", dir.display())?;
        }
        Ok(())
    }
}
