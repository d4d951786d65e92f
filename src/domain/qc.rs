//! Real-time quality control after IOOS QARTOD, with ioos_qc 3.0's names, units and
//! semantics (WATER.md §5): gross range, spike (average method), rate of change (units per
//! second), flat line (seconds, with a tolerance), and the aggregate flag — made safe for real
//! station data (WATER.md §5.5): gaps restart the time-dependent tests, thresholds follow each
//! parameter's observed spacing, values at or below the detection limit are never a flat line,
//! and only a *fail* keeps a value out of judgement.
//!
//! Fed by the rules (one value at a time, through [`Stream`]) and by `assess` (whole series,
//! through [`run`], which is the stream folded over the series, so the daemon and `assess` give
//! the same flags by construction); feeds the stored `<key>_qc` flags and the judgement. Pure:
//! times are seconds since the epoch, given by the caller.
//!
//! Semantics, test by test:
//! - **Spacing.** A parameter's spacing is the median of its last [`SPACING_STEPS`] time steps
//!   (a gap is one step among them, so it does not move the median). Below [`PROBE_MAX_SPACING`]
//!   the parameter is a *probe* (minutes), otherwise an *analyser* (hours); each class has its
//!   own default thresholds ([`default_plan`]) and its own neighbour window
//!   ([`Spacing::window`]).
//! - **Spike and rate of change** compare a value with its neighbours only when they lie within
//!   the class's window; across a longer gap the test is not evaluated (flag 2, which the
//!   aggregate ranks below pass). A window that holds at most one expected reading disables the
//!   test. The analyser defaults have no fail threshold: at hours' spacing a one-sample slug is
//!   as likely to be pollution as a fault, so it is judged, with the note.
//! - **Flat line** counts readings as ioos_qc does (threshold ÷ spacing, truncated); a count of at
//!   most one disables it rather than flagging every value of a sparse series (ioos_qc flags
//!   such a series whole: a deliberate departure). A step longer than the test's longest
//!   threshold restarts the run, and a value at or below the detection limit is not part of any
//!   run (an analyser's below-detection placeholder is a value, not a stuck sensor).
//!
//! On regular series with configured ioos_qc tests the flags equal ioos_qc's
//! (`tests/crosscheck.rs`). The spike test of reading n needs reading n+1, so reading n is first
//! flagged without it (ioos_qc flags the last point of a series UNKNOWN for the spike test too)
//! and revised when n+1 arrives.

use super::param::Param;
use std::collections::VecDeque;

/// QARTOD primary flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    Good,
    Unknown,
    Suspect,
    Fail,
    Missing,
}

impl Flag {
    /// The stored integer: 1, 2, 3, 4, 9.
    pub fn code(self) -> u8 {
        match self {
            Flag::Good => 1,
            Flag::Unknown => 2,
            Flag::Suspect => 3,
            Flag::Fail => 4,
            Flag::Missing => 9,
        }
    }

    /// ioos_qc's `qartod_compare` precedence: FAIL > SUSPECT > GOOD > UNKNOWN > MISSING.
    fn rank(self) -> u8 {
        match self {
            Flag::Missing => 0,
            Flag::Unknown => 1,
            Flag::Good => 2,
            Flag::Suspect => 3,
            Flag::Fail => 4,
        }
    }

    /// Whether the value may be judged against GB 3838. Only a failed value (outside what the
    /// instrument can report, or a fault the tests are sure of) is kept out: a suspect value
    /// is judged and may alert, with the QC note beside it, because QC must never hide
    /// pollution (SPEC §7, WATER.md §5.5).
    pub fn is_judgeable(self) -> bool {
        !matches!(self, Flag::Fail | Flag::Missing)
    }
}

/// The test that set a flag: the note a stored point and a message carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    GrossRange,
    Spike,
    RateOfChange,
    FlatLine,
}

impl Test {
    /// ioos_qc's name of the test.
    pub fn key(self) -> &'static str {
        match self {
            Test::GrossRange => "gross_range_test",
            Test::Spike => "spike_test",
            Test::RateOfChange => "rate_of_change_test",
            Test::FlatLine => "flat_line_test",
        }
    }
}

/// The aggregate of several tests' flags; MISSING when there are none.
pub fn aggregate(flags: impl IntoIterator<Item = Flag>) -> Flag {
    noted(flags.into_iter().map(|f| (f, None))).0
}

/// The aggregate flag and the test that set it (the first of the worst).
fn noted(flags: impl IntoIterator<Item = (Flag, Option<Test>)>) -> (Flag, Option<Test>) {
    flags
        .into_iter()
        .fold((Flag::Missing, None), |best, (f, t)| {
            if f.rank() > best.0.rank() {
                (f, t)
            } else {
                best
            }
        })
}

/// `gross_range_test`: outside `suspect_span` is SUSPECT, outside `fail_span` FAIL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrossRange {
    pub fail_span: (f64, f64),
    pub suspect_span: Option<(f64, f64)>,
}

/// `spike_test`, average method: |x(n) − (x(n−1) + x(n+1))/2| above a threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spike {
    pub suspect_threshold: Option<f64>,
    pub fail_threshold: Option<f64>,
}

/// `rate_of_change_test`: |Δx/Δt| in units per second above `threshold` is SUSPECT, above
/// `fail_threshold` FAIL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateOfChange {
    pub threshold: f64,
    pub fail_threshold: Option<f64>,
}

/// `flat_line_test`: values that stay within `tolerance` for `suspect_threshold` (or
/// `fail_threshold`) seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlatLine {
    pub tolerance: f64,
    pub suspect_threshold: f64,
    pub fail_threshold: f64,
}

/// The tests configured for one parameter; an absent test is not run.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Tests {
    pub gross_range: Option<GrossRange>,
    pub spike: Option<Spike>,
    pub rate_of_change: Option<RateOfChange>,
    pub flat_line: Option<FlatLine>,
}

impl Tests {
    pub fn is_empty(&self) -> bool {
        self == &Tests::default()
    }
}

/// How densely a parameter is measured at a station, from its observed spacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spacing {
    /// In-situ probes, minutes apart (temperature, pH, DO, conductivity, turbidity).
    Probe,
    /// Wet-chemistry analysers, hours apart (CODMn, NH3-N, TP, TN; often every 4 h).
    Analyser,
}

/// Spacings below this (seconds) are probes.
pub const PROBE_MAX_SPACING: i64 = 30 * 60;

/// How many recent time steps the spacing is the median of.
pub const SPACING_STEPS: usize = 9;

impl Spacing {
    /// The class of a spacing in seconds.
    pub fn of(spacing_s: f64) -> Spacing {
        if spacing_s < PROBE_MAX_SPACING as f64 {
            Spacing::Probe
        } else {
            Spacing::Analyser
        }
    }

    /// The longest step (seconds) across which the spike and rate-of-change tests still
    /// compare neighbours: an hour of probe data, half a day of analyser data (a 4-hourly
    /// analyser that missed two results). Across a longer gap they restart.
    pub fn window(self) -> i64 {
        match self {
            Spacing::Probe => 3600,
            Spacing::Analyser => 12 * 3600,
        }
    }
}

/// The tests of one parameter for each spacing class: the defaults differ by class; a
/// configured `[qc.<param>]` table applies to both.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Plan {
    pub probe: Tests,
    pub analyser: Tests,
}

impl Plan {
    /// The same tests whatever the spacing.
    pub fn uniform(tests: Tests) -> Plan {
        Plan {
            probe: tests,
            analyser: tests,
        }
    }

    pub fn at(&self, spacing: Spacing) -> &Tests {
        match spacing {
            Spacing::Probe => &self.probe,
            Spacing::Analyser => &self.analyser,
        }
    }
}

const HOUR: f64 = 3600.0;

/// Starting values for the Bei, Pa and Lepai stations (WATER.md §5.4, ENGINEERING SUGGESTION),
/// reviewed against GB 3838 and real station data (WATER.md §5.5):
/// - every `fail_span` is an instrument's whole reporting range, wide enough that any value
///   GB 3838 can class (anoxic DO 0.01, pH 9.6, NH3-N 5, CODMn 40) is judged; the suspect spans
///   only add a note;
/// - probes keep the sonde thresholds of §5.4 (a lone 5-minute spike may fail);
/// - analysers get thresholds for hours between results and no spike or rate fail: a 4-hourly
///   DO swings 6 ↔ 9.5 mg/L with the day, and a one-sample NH3-N slug is judged, not dropped;
/// - flat line at analyser spacing: 4 identical results suspect, 6 fail (12 h / 20 h at 4 h).
pub fn default_plan(param: Param) -> Plan {
    let range = |fail: (f64, f64), suspect: Option<(f64, f64)>| {
        Some(GrossRange {
            fail_span: fail,
            suspect_span: suspect,
        })
    };
    let spike = |s: f64, f: Option<f64>| {
        Some(Spike {
            suspect_threshold: Some(s),
            fail_threshold: f,
        })
    };
    let roc = |per_hour: f64| {
        Some(RateOfChange {
            threshold: per_hour / HOUR,
            fail_threshold: None,
        })
    };
    let flat = |tolerance: f64, suspect_h: f64, fail_h: f64| {
        Some(FlatLine {
            tolerance,
            suspect_threshold: suspect_h * HOUR,
            fail_threshold: fail_h * HOUR,
        })
    };
    // (gross range, probe spike, analyser spike, probe rate, analyser rate, flat tolerance)
    let (gross_range, probe_spike, analyser_spike, probe_rate, analyser_rate, tolerance) =
        match param {
            Param::Temp => (
                range((-5.0, 45.0), Some((0.0, 38.0))),
                spike(1.0, Some(2.0)),
                spike(3.0, None),
                roc(1.0),
                roc(2.0),
                0.05,
            ),
            Param::Ph => (
                range((0.0, 14.0), Some((4.0, 11.0))),
                spike(0.3, Some(0.5)),
                spike(0.8, None),
                roc(0.3),
                roc(0.5),
                0.01,
            ),
            Param::Do => (
                range((0.0, 25.0), Some((0.2, 20.0))),
                spike(0.5, Some(1.0)),
                spike(2.5, None),
                roc(1.0),
                roc(1.5),
                0.02,
            ),
            // Floods cause real steps in conductivity and turbidity: no spike or rate test.
            Param::Cond => (range((0.0, 5000.0), None), None, None, None, None, 1.0),
            Param::Turb => (range((0.0, 4000.0), None), None, None, None, None, 0.1),
            Param::Codmn => (
                range((0.0, 100.0), Some((0.2, 30.0))),
                spike(2.0, Some(4.0)),
                spike(4.0, None),
                None,
                None,
                0.005,
            ),
            Param::Nh3n => (
                range((0.0, 100.0), Some((0.01, 20.0))),
                spike(0.5, Some(1.0)),
                spike(0.5, None),
                None,
                None,
                0.0005,
            ),
            Param::Tp => (
                range((0.0, 20.0), Some((0.002, 4.0))),
                spike(0.1, Some(0.2)),
                spike(0.1, None),
                None,
                None,
                0.0005,
            ),
            _ => return Plan::default(),
        };
    Plan {
        probe: Tests {
            gross_range,
            spike: probe_spike,
            rate_of_change: probe_rate,
            flat_line: flat(tolerance, 12.0, 24.0),
        },
        analyser: Tests {
            gross_range,
            spike: analyser_spike,
            rate_of_change: analyser_rate,
            flat_line: flat(tolerance, 12.0, 20.0),
        },
    }
}

fn outside(v: f64, (lo, hi): (f64, f64)) -> bool {
    v < lo || v > hi
}

fn gross_flag(v: f64, cfg: &GrossRange) -> Flag {
    if !v.is_finite() {
        Flag::Missing
    } else if outside(v, cfg.fail_span) {
        Flag::Fail
    } else if cfg.suspect_span.is_some_and(|s| outside(v, s)) {
        Flag::Suspect
    } else {
        Flag::Good
    }
}

fn spike_flag(prev: f64, v: f64, next: f64, cfg: &Spike) -> Flag {
    let d = (v - (prev + next) / 2.0).abs();
    if !d.is_finite() {
        return Flag::Missing;
    }
    let over = |t: Option<f64>| t.is_some_and(|t| t != 0.0 && d > t);
    if over(cfg.fail_threshold) {
        Flag::Fail
    } else if over(cfg.suspect_threshold) {
        Flag::Suspect
    } else {
        Flag::Good
    }
}

fn roc_flag(prev: (i64, f64), cur: (i64, f64), cfg: &RateOfChange) -> Flag {
    let dt = (cur.0 - prev.0) as f64;
    let rate = ((cur.1 - prev.1) / dt).abs();
    if cfg.fail_threshold.is_some_and(|f| rate > f) {
        Flag::Fail
    } else if rate > cfg.threshold {
        Flag::Suspect
    } else {
        Flag::Good
    }
}

/// Number of readings a threshold of `threshold_s` seconds spans at `spacing_s`, as ioos_qc
/// counts them (truncated).
fn expected_readings(threshold_s: f64, spacing_s: f64) -> usize {
    if spacing_s <= 0.0 {
        return usize::MAX;
    }
    (threshold_s.trunc() / spacing_s) as usize
}

/// The flat-line flag when the newest `run` values lie within the tolerance together. A
/// threshold that spans at most one reading disables its half of the test (WATER.md §5.5 3).
fn flat_verdict(run: usize, spacing_s: f64, cfg: &FlatLine) -> Flag {
    let over = |threshold: f64| {
        let count = expected_readings(threshold, spacing_s);
        count != usize::MAX && count > 1 && run > count
    };
    if over(cfg.fail_threshold) {
        Flag::Fail
    } else if over(cfg.suspect_threshold) {
        Flag::Suspect
    } else {
        Flag::Good
    }
}

/// Whether a neighbour `step` seconds away may be compared at this spacing: within the class's
/// window, and the window holds more than one expected reading.
fn neighbour_in_window(step: i64, spacing_s: f64) -> bool {
    let window = Spacing::of(spacing_s).window();
    step <= window && expected_readings(window as f64, spacing_s) > 1
}

/// The newest run of values within a tolerance of each other, kept as a value arrives: the
/// run can only start later as values come in, so two monotonic queues (of the run's minimum
/// and maximum candidates) give its length in amortised O(1), holding only the values that
/// can still be the run's extremes — one for a flat line, a handful for ordinary data —
/// instead of a day of values.
#[derive(Debug, Clone, Default)]
struct Run {
    /// Index the next value gets.
    next: u64,
    /// Index of the run's first value.
    start: u64,
    lo: VecDeque<(u64, f64)>,
    hi: VecDeque<(u64, f64)>,
}

impl Run {
    /// Adds the newest value; returns the length of the run it ends, at most `limit`.
    fn push(&mut self, v: f64, tolerance: f64, limit: u64) -> u64 {
        let i = self.next;
        self.next += 1;
        while self.lo.back().is_some_and(|&(_, x)| x >= v) {
            self.lo.pop_back();
        }
        self.lo.push_back((i, v));
        while self.hi.back().is_some_and(|&(_, x)| x <= v) {
            self.hi.pop_back();
        }
        self.hi.push_back((i, v));
        self.start = self.start.max((i + 1).saturating_sub(limit));
        loop {
            while self.lo.front().is_some_and(|&(k, _)| k < self.start) {
                self.lo.pop_front();
            }
            while self.hi.front().is_some_and(|&(k, _)| k < self.start) {
                self.hi.pop_front();
            }
            let (Some(&(_, l)), Some(&(_, h))) = (self.lo.front(), self.hi.front()) else {
                break;
            };
            // A NaN range ends the run (NaN never occurs: the decoders refuse it).
            if (h - l).abs().partial_cmp(&tolerance) == Some(std::cmp::Ordering::Less) {
                break;
            }
            self.start += 1;
        }
        i + 1 - self.start.min(i + 1)
    }

    /// Starts a new run at the next value: after a gap, or a value below detection.
    fn restart(&mut self) {
        self.start = self.next;
        self.lo.clear();
        self.hi.clear();
    }
}

/// The last [`SPACING_STEPS`] time steps of a parameter and their median: the spacing the
/// thresholds follow. A gap is one step among nine, so it does not move the median.
#[derive(Debug, Clone, Default)]
struct RecentSteps {
    steps: VecDeque<u32>,
}

impl RecentSteps {
    fn push(&mut self, step: u32) {
        if self.steps.len() >= SPACING_STEPS {
            self.steps.pop_front();
        }
        self.steps.push_back(step);
    }

    /// The median step in whole seconds (an even count averages the middle two and truncates,
    /// as ioos_qc rounds its median interval); `None` before the first step.
    fn median(&self) -> Option<f64> {
        let n = self.steps.len();
        if n == 0 {
            return None;
        }
        let mut sorted = [0u32; SPACING_STEPS];
        for (slot, &s) in sorted.iter_mut().zip(&self.steps) {
            *slot = s;
        }
        let sorted = &mut sorted[..n];
        sorted.sort_unstable();
        Some(if n % 2 == 1 {
            f64::from(sorted[n / 2])
        } else {
            ((f64::from(sorted[n / 2 - 1]) + f64::from(sorted[n / 2])) / 2.0).trunc()
        })
    }
}

/// Runs every test over a whole series (times in seconds, increasing) and returns each value's
/// final aggregate flag. This is [`Stream`] folded over the series with each revision applied,
/// so `assess` and the daemon agree by construction; `floor` is the parameter's detection
/// limit (values at or below it are never a flat line).
pub fn run(values: &[f64], times: &[i64], plan: &Plan, floor: Option<f64>) -> Vec<Flag> {
    let mut stream = Stream::default();
    let mut out: Vec<Flag> = Vec::with_capacity(values.len());
    for (&t, &v) in times.iter().zip(values) {
        let verdict = stream.push(t, v, plan, floor);
        if let Some((at, flag)) = verdict.revised {
            // The revised value is the newest earlier one at that time.
            if let Some(i) = times[..out.len()].iter().rposition(|&x| x == at) {
                out[i] = flag;
            }
        }
        out.push(verdict.flag);
    }
    out
}

/// What the stream says after one more value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// The new value's flag, without the spike test (which needs the next value).
    pub flag: Flag,
    /// The test that set `flag` when it is suspect or fail: the QC note.
    pub note: Option<Test>,
    /// The previous value's final flag, now that its spike test is decided, when it differs
    /// from what was said of it before: (its time, its flag).
    pub revised: Option<(i64, Flag)>,
}

/// QC of one station's parameter as readings arrive, in time order.
///
/// Compact by design (a 1,000-station network holds thousands of these): the newest two
/// values, nine time steps and the flat-line [`Run`], whatever the cadence.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    /// The newest (time, value), and the one before it: the spike and rate-of-change tests
    /// need them.
    last: Option<(i64, f64)>,
    before_last: Option<(i64, f64)>,
    /// The recent time steps: the spacing, hence the thresholds and the windows.
    steps: RecentSteps,
    /// The newest values within the flat-line tolerance since the last restart.
    run: Run,
    /// The flag of the newest value without its spike test.
    pending: Option<Flag>,
    /// Flags given to recent values (time and flag packed by [`pack`]), so a replayed reading
    /// gets the same answer instead of disturbing the history (a redelivered message would
    /// otherwise look like an infinitely fast change).
    given: VecDeque<i64>,
}

/// How many recent flags a stream remembers for replays.
const REMEMBERED: usize = 32;

/// Longest flat-line run counted: a 24 h flat line at one value a minute.
const MAX_RUN: u64 = 1500;

/// A time and a flag in one word (times are seconds, far inside 56 bits).
fn pack(t: i64, flag: Flag) -> i64 {
    (t << 8) | i64::from(flag.code())
}

fn unpack(x: i64) -> (i64, Flag) {
    let flag = match x & 0xff {
        1 => Flag::Good,
        3 => Flag::Suspect,
        4 => Flag::Fail,
        9 => Flag::Missing,
        _ => Flag::Unknown,
    };
    (x >> 8, flag)
}

impl Stream {
    /// Takes the next value. A value not later than the newest one is a replay: it changes
    /// nothing and gets the flag that value was given (UNKNOWN if it is too old to remember).
    /// `floor` is the parameter's detection limit at the station.
    pub fn push(&mut self, t: i64, v: f64, plan: &Plan, floor: Option<f64>) -> Verdict {
        if self.last.is_some_and(|(last, _)| t <= last) {
            let flag = self
                .given
                .iter()
                .rev()
                .map(|&x| unpack(x))
                .find(|(at, _)| *at == t)
                .map_or(Flag::Unknown, |(_, f)| f);
            return Verdict {
                flag,
                note: None,
                revised: None,
            };
        }
        let verdict = self.decide(t, v, plan, floor);
        if let Some((at, flag)) = verdict.revised {
            if let Some(slot) = self.given.iter_mut().rev().find(|x| unpack(**x).0 == at) {
                *slot = pack(at, flag);
            }
        }
        if self.given.len() >= REMEMBERED {
            self.given.pop_front();
        }
        super::ring::push(&mut self.given, pack(t, verdict.flag));
        verdict
    }

    fn decide(&mut self, t: i64, v: f64, plan: &Plan, floor: Option<f64>) -> Verdict {
        let previous = self.last;
        // A step of over a century counts as the longest step there is: a restart.
        let step = previous.map(|(last, _)| u32::try_from(t - last).unwrap_or(u32::MAX));
        if let Some(s) = step {
            self.steps.push(s);
        }
        let spacing = self.steps.median();
        let tests = plan.at(spacing.map_or(Spacing::Analyser, Spacing::of));
        let near = |s: Option<u32>| {
            s.zip(spacing)
                .is_some_and(|(s, sp)| neighbour_in_window(i64::from(s), sp))
        };
        // The previous value's spike test is decidable now, if both its neighbours are near.
        let mut revised = None;
        if let (Some(cfg), Some(pending), Some((ta, a)), Some((tb, b))) =
            (&tests.spike, self.pending, self.before_last, previous)
        {
            let before_step = u32::try_from(tb - ta).unwrap_or(u32::MAX);
            let spike = if near(Some(before_step)) && near(step) {
                spike_flag(a, b, v, cfg)
            } else {
                Flag::Unknown
            };
            let said = aggregate([pending, Flag::Unknown]);
            let now = aggregate([pending, spike]);
            if now != said {
                revised = Some((tb, now));
            }
        }
        self.before_last = previous;
        self.last = Some((t, v));

        let mut flags: [(Flag, Option<Test>); 3] = [(Flag::Missing, None); 3];
        if let Some(cfg) = &tests.gross_range {
            flags[0] = (gross_flag(v, cfg), Some(Test::GrossRange));
        }
        if let Some(cfg) = &tests.rate_of_change {
            flags[1] = match previous {
                // ioos_qc passes a series' first value.
                None => (Flag::Good, None),
                Some(p) if near(step) => (roc_flag(p, (t, v), cfg), Some(Test::RateOfChange)),
                // Across a gap: not evaluated; the next value compares again.
                Some(_) => (Flag::Unknown, None),
            };
        }
        if let Some(cfg) = &tests.flat_line {
            let longest = cfg.fail_threshold.max(cfg.suspect_threshold);
            if step.is_some_and(|s| f64::from(s) > longest) {
                self.run.restart();
            }
            flags[2] = if floor.is_some_and(|f| v <= f) {
                // Below detection: a value, never part of a flat line.
                self.run.restart();
                (Flag::Unknown, None)
            } else {
                let run = self.run.push(v, cfg.tolerance, MAX_RUN);
                let run = usize::try_from(run).unwrap_or(usize::MAX);
                match spacing {
                    Some(sp) => (flat_verdict(run, sp, cfg), Some(Test::FlatLine)),
                    None => (Flag::Good, None),
                }
            };
        }
        if tests.flat_line.is_none() {
            // The run is counted only while the test runs (the spacing class can change).
            self.run.restart();
        }
        if tests.is_empty() {
            self.pending = None;
            return Verdict {
                flag: Flag::Unknown,
                note: None,
                revised,
            };
        }
        let (without_spike, note) = noted(flags);
        self.pending = Some(without_spike);
        let flag = if tests.spike.is_some() {
            aggregate([without_spike, Flag::Unknown])
        } else {
            without_spike
        };
        let note = note.filter(|_| matches!(flag, Flag::Suspect | Flag::Fail));
        Verdict {
            flag,
            note,
            revised,
        }
    }
}

#[cfg(test)]
mod tests;
