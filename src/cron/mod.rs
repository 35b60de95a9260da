//! `[cron.NAME]` schedules (SPEC §10), as pure functions of the wall clock.
//!
//! # Time
//! An occurrence is a wall-clock instant, computed by croner in the job's
//! IANA time zone (jiff: the system's zoneinfo, else the copy compiled in,
//! for scratch and distroless images): a fixed-time job (`30 2 * * *`) runs once on
//! both daylight-saving change days — in the spring gap at the first real
//! instant after it, in the autumn overlap at the earlier of the two 02:30s.
//! The loop sleeps on the monotonic clock until the next occurrence is due
//! (no polling tick), then asks [`wake`] what the wall clock says now:
//! - the wall clock is at or past the occurrence: run it, once, and
//!   schedule the first occurrence after *now*. A laptop that slept through
//!   ten occurrences (the monotonic clock stands still during a suspend, so
//!   the loop wakes late) or a clock stepped forward runs the job once, not
//!   ten times, and the next run is the next one on the clock: no flood, no
//!   skip of the next.
//! - the wall clock is before it (stepped back, or NTP slewing): nothing
//!   runs; sleep again for what is left. The same occurrence never runs twice.

use std::time::Duration;

use croner::parser::{CronParser, Seconds};
use croner::Cron;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// What to do when a run is due while the previous one still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Leave the running one alone; this occurrence is skipped (and counted).
    Skip,
    /// Stop the running one (its group gets SIGTERM, SIGKILL after 5 s), then start.
    Replace,
}

/// A parsed schedule in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// As written, for logs and /health.
    pub text: String,
    cron: Cron,
    pub timezone: TimeZone,
    /// The zone's IANA name, as configured (`UTC` by default).
    pub timezone_name: String,
}

impl Schedule {
    /// 5 fields, or 6 with seconds first, or `@hourly`, `@daily`…
    pub fn parse(text: &str, timezone_name: &str) -> Result<Schedule, ScheduleError> {
        let timezone = TimeZone::get(timezone_name).map_err(|_| ScheduleError::UnknownZone)?;
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(text.trim())
            .map_err(|err| ScheduleError::Pattern(err.to_string()))?;
        // A pattern that can never match (`0 0 31 2 *`) would otherwise sleep forever in silence.
        let schedule = Schedule {
            text: text.to_string(),
            cron,
            timezone,
            timezone_name: timezone_name.to_string(),
        };
        if schedule.next_after(Timestamp::now()).is_none() {
            return Err(ScheduleError::Never);
        }
        Ok(schedule)
    }

    /// The first occurrence strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let local = after.to_zoned(self.timezone.clone());
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.timestamp())
    }
}

/// Why a schedule or its zone was refused (the message names no value but the one written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{0}")]
    Pattern(String),
    #[error("never matches a real date")]
    Never,
    #[error("unknown time zone")]
    UnknownZone,
}

/// What the loop does when it wakes for an occurrence due at `due`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Run now, once; the next occurrence is `next` (None: the schedule has no more).
    Run { next: Option<Timestamp> },
    /// Not yet by the wall clock: sleep this much more.
    NotYet(Duration),
}

/// The one rule of the module doc: run when the wall clock has reached
/// `due`, and then schedule from now, never from `due`.
pub fn wake(schedule: &Schedule, due: Timestamp, now: Timestamp) -> Wake {
    if now < due {
        return Wake::NotYet(until(due, now));
    }
    Wake::Run {
        next: schedule.next_after(now.max(due)),
    }
}

/// How long until `due` by the wall clock, for the loop's monotonic sleep.
pub fn until(due: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(due.duration_since(now)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    fn utc(y: i16, mo: i8, d: i8, h: i8, mi: i8, s: i8) -> Timestamp {
        jiff::civil::date(y, mo, d)
            .at(h, mi, s, 0)
            .to_zoned(TimeZone::UTC)
            .expect("a valid instant")
            .timestamp()
    }

    fn berlin(text: &str) -> Schedule {
        Schedule::parse(text, "Europe/Berlin").expect("parses")
    }

    /// Occurrences in [from, to).
    fn runs(schedule: &Schedule, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
        let mut out = Vec::new();
        let mut at = from - SignedDuration::from_secs(1);
        while let Some(next) = schedule.next_after(at).filter(|next| *next < to) {
            out.push(next);
            at = next;
        }
        out
    }

    #[test]
    fn a_2_30_job_in_berlin_runs_once_on_both_daylight_saving_days() {
        let job = berlin("30 2 * * *");
        // 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist.
        let spring = runs(&job, utc(2026, 3, 28, 23, 0, 0), utc(2026, 3, 29, 22, 0, 0));
        assert_eq!(spring.len(), 1, "{spring:?}");
        assert_eq!(
            spring[0],
            utc(2026, 3, 29, 1, 0, 0),
            "03:00 CEST, the first instant after the gap"
        );
        // 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
        let autumn = runs(&job, utc(2026, 10, 24, 22, 0, 0), utc(2026, 10, 25, 23, 0, 0));
        assert_eq!(autumn, [utc(2026, 10, 25, 0, 30, 0)], "the earlier 02:30 (CEST) only");
        // An ordinary day: once.
        assert_eq!(
            runs(&job, utc(2026, 6, 1, 22, 0, 0), utc(2026, 6, 2, 22, 0, 0)).len(),
            1
        );
    }

    #[test]
    fn five_or_six_fields_aliases_and_bad_patterns() {
        let utc_zone = "UTC";
        let every_second = Schedule::parse("* * * * * *", utc_zone).expect("6 fields");
        let t = utc(2026, 1, 1, 0, 0, 0);
        assert_eq!(every_second.next_after(t), Some(utc(2026, 1, 1, 0, 0, 1)));
        let every_minute = Schedule::parse("*/15 * * * *", utc_zone).expect("5 fields");
        assert_eq!(every_minute.next_after(t), Some(utc(2026, 1, 1, 0, 15, 0)));
        let hourly = Schedule::parse("@hourly", utc_zone).expect("alias");
        assert_eq!(hourly.next_after(t), Some(utc(2026, 1, 1, 1, 0, 0)));
        for bad in ["", "* * *", "61 * * * *", "every day", "0 0 31 2 *"] {
            assert!(Schedule::parse(bad, utc_zone).is_err(), "{bad:?}");
        }
    }

    /// The wall-clock rule, with an injected clock.
    #[test]
    fn a_late_wake_runs_once_and_a_clock_stepped_back_waits() {
        let job = Schedule::parse("*/5 * * * *", "UTC").expect("parses");
        let due = utc(2026, 5, 1, 10, 0, 0);
        // On time.
        assert_eq!(
            wake(&job, due, due),
            Wake::Run {
                next: Some(utc(2026, 5, 1, 10, 5, 0))
            }
        );
        // A suspended laptop wakes at 13:02: one run, and the next is 13:05,
        // not the 35 occurrences in between.
        assert_eq!(
            wake(&job, due, utc(2026, 5, 1, 13, 2, 0)),
            Wake::Run {
                next: Some(utc(2026, 5, 1, 13, 5, 0))
            }
        );
        // The clock was stepped back an hour: not yet, an hour to go.
        assert_eq!(
            wake(&job, due, utc(2026, 5, 1, 9, 0, 0)),
            Wake::NotYet(Duration::from_secs(3600))
        );
        // The monotonic sleep ended a little early by the wall clock: not yet.
        assert_eq!(
            wake(&job, due, due - SignedDuration::from_millis(3)),
            Wake::NotYet(Duration::from_millis(3))
        );
        assert_eq!(until(due, due + SignedDuration::from_secs(1)), Duration::ZERO);
        assert_eq!(
            Schedule::parse("@daily", "Mars/Olympus").err(),
            Some(ScheduleError::UnknownZone)
        );
    }
}
