//! The planning timetable, step by step with time as values.

use proptest::prelude::*;

use super::*;

/// Every [`Watch`]; [`every_watch_must_list_before_the_first_plan`] fails if one is missing.
const ALL: [Watch; 13] = [
    Watch::Services,
    Watch::EndpointSlices,
    Watch::Nodes,
    Watch::Pools,
    Watch::L2Advertisements,
    Watch::BgpAdvertisements,
    Watch::Peers,
    Watch::Communities,
    Watch::BfdProfiles,
    Watch::Secrets,
    Watch::L2Statuses,
    Watch::BgpStatuses,
    Watch::ConfigStates,
];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A schedule whose watches have all listed, with the first plan taken and every deadline
/// passed; and the time then.
fn listed(has_gossip: bool) -> (Schedule, Instant) {
    let start = Instant::now();
    let mut schedule = Schedule::new(has_gossip);
    for watch in ALL {
        schedule.on_watch(start, watch, true, false);
    }
    schedule.on_time(start + WATCH_DEBOUNCE);
    assert!(
        schedule.take_plan().is_some(),
        "the first plan follows the lists"
    );
    let t0 = start + STATUS_RECHECK;
    assert!(
        schedule.on_time(t0),
        "the status lists ask for a comparison"
    );
    assert_eq!(schedule.next_deadline(), None);
    (schedule, t0)
}

#[test]
fn every_watch_must_list_before_the_first_plan() {
    let t0 = Instant::now();
    for left_out in ALL {
        let mut schedule = Schedule::new(false);
        for watch in ALL.into_iter().filter(|w| *w != left_out) {
            schedule.on_watch(t0, watch, true, true);
        }
        schedule.on_link_changed();
        schedule.on_time(t0 + WATCH_DEBOUNCE);
        assert_eq!(schedule.take_plan(), None, "{left_out:?} has not listed");
        schedule.on_watch(t0 + ms(30), left_out, true, false);
        schedule.on_time(t0 + ms(30) + WATCH_DEBOUNCE);
        assert!(
            schedule.take_plan().is_some(),
            "the last first list ({left_out:?}) brings the first plan"
        );
    }
}

#[test]
fn watch_events_within_the_debounce_share_one_plan() {
    let (mut schedule, t0) = listed(false);
    schedule.on_watch(t0 + ms(100), Watch::EndpointSlices, false, true);
    schedule.on_watch(t0 + ms(110), Watch::Services, false, true);
    assert_eq!(
        schedule.next_deadline(),
        Some(t0 + ms(100) + WATCH_DEBOUNCE)
    );
    schedule.on_time(t0 + ms(110));
    assert_eq!(schedule.take_plan(), None, "not before the window ends");
    schedule.on_time(t0 + ms(120));
    assert!(schedule.take_plan().is_some());
    assert_eq!(schedule.next_deadline(), None);
    assert_eq!(schedule.take_plan(), None, "one plan for both events");
}

#[test]
fn an_event_that_changes_nothing_asks_for_no_plan() {
    let (mut schedule, t0) = listed(false);
    schedule.on_watch(t0 + ms(100), Watch::Services, false, false);
    assert_eq!(schedule.next_deadline(), None);
}

#[test]
fn any_store_event_asks_for_a_plan_and_a_status_event_never_does() {
    for watch in ALL.into_iter().filter(|w| !w.is_input()) {
        let (mut schedule, t0) = listed(false);
        schedule.on_watch(t0, watch, false, false);
        let asked = schedule.next_deadline() == Some(t0 + WATCH_DEBOUNCE);
        assert_eq!(asked, !watch.is_status(), "{watch:?}");
    }
}

#[test]
fn a_slow_plan_stretches_the_debounce_to_its_own_length() {
    let (mut schedule, t0) = listed(false);
    schedule.on_planned(ms(150));
    schedule.on_watch(t0 + ms(200), Watch::Nodes, false, false);
    assert_eq!(schedule.next_deadline(), Some(t0 + ms(350)));
}

#[test]
fn our_status_objects_change_no_plan_but_the_status_task_looks_again_after_a_pause() {
    let (mut schedule, t0) = listed(false);
    schedule.on_watch(t0 + ms(100), Watch::L2Statuses, false, false);
    schedule.on_watch(t0 + ms(400), Watch::BgpStatuses, false, false);
    assert_eq!(
        schedule.next_deadline(),
        Some(t0 + ms(100) + STATUS_RECHECK),
        "the first of a burst sets the time"
    );
    assert!(!schedule.on_time(t0 + ms(900)));
    assert!(schedule.on_time(t0 + ms(100) + STATUS_RECHECK));
    assert_eq!(schedule.take_plan(), None);
    assert_eq!(schedule.next_deadline(), None);
}

#[test]
fn membership_and_link_changes_are_planned_at_once() {
    let (mut schedule, t0) = listed(false);
    schedule.on_link_changed();
    assert_eq!(
        schedule.take_plan(),
        Some(Plan {
            start_gossip: false,
            membership_changed_at: None
        })
    );
    schedule.on_membership_changed(t0 + ms(5));
    assert_eq!(
        schedule.take_plan().and_then(|p| p.membership_changed_at),
        Some(t0 + ms(5)),
        "the plan learns when the membership changed"
    );
    schedule.on_link_changed();
    assert_eq!(
        schedule.take_plan().and_then(|p| p.membership_changed_at),
        None,
        "only the first plan after the change measures from it"
    );
}

#[test]
fn a_membership_change_before_the_first_plan_is_kept_for_it() {
    let t0 = Instant::now();
    let mut schedule = Schedule::new(true);
    schedule.on_membership_changed(t0);
    assert_eq!(schedule.take_plan(), None);
    for watch in ALL {
        schedule.on_watch(t0 + ms(1), watch, true, false);
    }
    schedule.on_time(t0 + ms(1) + WATCH_DEBOUNCE);
    assert_eq!(
        schedule.take_plan().and_then(|p| p.membership_changed_at),
        Some(t0)
    );
}

#[test]
fn a_plan_clears_a_pending_debounce() {
    let (mut schedule, t0) = listed(false);
    schedule.on_watch(t0 + ms(100), Watch::Pools, false, true);
    schedule.on_link_changed();
    assert!(schedule.take_plan().is_some());
    assert_eq!(
        schedule.next_deadline(),
        None,
        "that plan covered the event"
    );
}

#[test]
fn gossip_starts_with_the_first_plan_and_a_plan_runs_once_it_has_settled() {
    let t0 = Instant::now();
    let mut schedule = Schedule::new(true);
    for watch in ALL {
        schedule.on_watch(t0, watch, true, false);
    }
    schedule.on_time(t0 + WATCH_DEBOUNCE);
    let first = schedule.take_plan().expect("first plan");
    assert!(first.start_gossip);
    assert!(
        schedule.on_time(t0 + STATUS_RECHECK),
        "the status lists ask for a comparison"
    );
    assert_eq!(schedule.settles_at(), None, "not started yet");
    let started = t0 + STATUS_RECHECK + ms(25);
    schedule.on_gossip_started(started);
    assert_eq!(schedule.settles_at(), Some(started + MEMBERS_SETTLE));
    assert_eq!(schedule.next_deadline(), Some(started + MEMBERS_SETTLE));
    schedule.on_time(started + MEMBERS_SETTLE);
    let settled = schedule
        .take_plan()
        .expect("a plan when the membership settled");
    assert!(!settled.start_gossip, "gossip starts once");
    assert_eq!(schedule.next_deadline(), None);
    assert_eq!(
        schedule.settles_at(),
        Some(started + MEMBERS_SETTLE),
        "the settle time stays known"
    );
}

#[test]
fn rejoining_the_membership_waits_for_it_to_settle_again() {
    let (mut schedule, t0) = listed(true);
    schedule.on_gossip_started(t0);
    schedule.on_time(t0 + MEMBERS_SETTLE);
    let _ = schedule.take_plan();
    let rejoined = t0 + Duration::from_secs(60);
    schedule.on_gossip_started(rejoined);
    assert_eq!(schedule.settles_at(), Some(rejoined + MEMBERS_SETTLE));
    assert_eq!(schedule.next_deadline(), Some(rejoined + MEMBERS_SETTLE));
}

#[test]
fn without_gossip_nothing_waits_to_settle() {
    let (mut schedule, _) = listed(false);
    schedule.on_link_changed();
    assert_eq!(schedule.take_plan().map(|p| p.start_gossip), Some(false));
    assert_eq!(schedule.settles_at(), None);
}

#[test]
fn a_debounce_that_ends_while_watches_still_list_is_not_left_armed() {
    // The loop once kept a passed deadline armed until every watch had listed, and spun.
    let t0 = Instant::now();
    let mut schedule = Schedule::new(false);
    schedule.on_watch(t0, Watch::Services, false, true);
    schedule.on_time(t0 + WATCH_DEBOUNCE);
    assert_eq!(schedule.take_plan(), None);
    assert_eq!(schedule.next_deadline(), None);
}

/// One thing that can happen to the schedule, `after` milliseconds after the previous one.
#[derive(Debug, Clone)]
enum Step {
    Watch(usize, bool, bool),
    Membership,
    Link,
    GossipStarted,
    Time,
    Planned(u64),
}

fn step() -> impl Strategy<Value = (u64, Step)> {
    let step = prop_oneof![
        (0usize..12, any::<bool>(), any::<bool>()).prop_map(|(w, s, c)| Step::Watch(w, s, c)),
        Just(Step::Membership),
        Just(Step::Link),
        Just(Step::GossipStarted),
        Just(Step::Time),
        (0u64..200).prop_map(Step::Planned),
    ];
    (0u64..500, step)
}

proptest! {
    /// The loop sleeps until `next_deadline`: one in the past after `on_time` would spin it, and
    /// no plan may run before every watch has listed.
    #[test]
    fn no_deadline_is_left_in_the_past_and_no_plan_precedes_the_lists(
        has_gossip in any::<bool>(),
        steps in proptest::collection::vec(step(), 0..60),
    ) {
        let mut now = Instant::now();
        let mut schedule = Schedule::new(has_gossip);
        let mut listed = std::collections::BTreeSet::new();
        for (after, step) in steps {
            now += ms(after);
            match step {
                Step::Watch(i, synced, changes) => {
                    if synced {
                        listed.insert(ALL[i]);
                    }
                    schedule.on_watch(now, ALL[i], synced, changes);
                }
                Step::Membership => schedule.on_membership_changed(now),
                Step::Link => schedule.on_link_changed(),
                Step::GossipStarted => schedule.on_gossip_started(now),
                Step::Time => {
                    schedule.on_time(now);
                    prop_assert!(schedule.next_deadline().is_none_or(|at| at > now));
                }
                Step::Planned(took) => schedule.on_planned(ms(took)),
            }
            if let Some(plan) = schedule.take_plan() {
                prop_assert_eq!(listed.len(), ALL.len());
                prop_assert!(!plan.start_gossip || has_gossip);
            }
        }
    }
}
