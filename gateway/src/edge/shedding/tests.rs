use std::time::Duration;

use super::Pie;
use crate::config::LoadShedding;
use crate::config::units::HumanDuration;

const TICK: Duration = Duration::from_millis(15);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A controller fed `delay` every interval for `updates` updates.
fn fed(pie: &mut Pie, delay: Duration, updates: usize) {
    for _ in 0..updates {
        pie.update(delay, TICK);
    }
}

/// How many of `n` requests `pie` sheds, with a seeded coin.
fn sheds(pie: &Pie, n: usize) -> usize {
    let mut coin = fastrand::Rng::with_seed(7);
    (0..n).filter(|_| pie.shed(|| coin.f64())).count()
}

#[test]
fn a_delay_under_the_target_sheds_nothing() {
    let mut pie = Pie::new(LoadShedding::default());
    fed(&mut pie, ms(15), 1000);
    assert_eq!(pie.share(), 0.0);
    assert_eq!(sheds(&pie, 1000), 0);
}

#[test]
fn a_burst_shorter_than_the_allowance_sheds_nothing() {
    let mut pie = Pie::new(LoadShedding::default());
    fed(&mut pie, ms(1), 10);
    // 120 ms of a delay five times the target: under the 150 ms allowance.
    fed(&mut pie, ms(100), 8);
    assert_eq!(pie.share(), 0.0, "{pie:?}");
    assert_eq!(sheds(&pie, 100), 0);
}

#[test]
fn a_standing_delay_above_the_target_sheds_a_growing_share() {
    let mut pie = Pie::new(LoadShedding::default());
    fed(&mut pie, ms(60), 20);
    let early = pie.share();
    assert!(early > 0.0, "{pie:?}");
    fed(&mut pie, ms(60), 200);
    let later = pie.share();
    assert!(later > early && later > 0.3, "{early} then {later}");
    let shed = sheds(&pie, 1000);
    let expected = later * 1000.0;
    assert!(
        (shed as f64 - expected).abs() < 100.0,
        "shed {shed} of 1000 at a share of {later}"
    );
}

#[test]
fn the_share_never_passes_max_share() {
    let settings = LoadShedding {
        max_share: 0.5,
        ..LoadShedding::default()
    };
    let mut pie = Pie::new(settings);
    fed(&mut pie, ms(2000), 500);
    assert_eq!(pie.share(), 0.5);
    let shed = sheds(&pie, 1000);
    assert!((430..=570).contains(&shed), "shed {shed} of 1000");
}

#[test]
fn a_late_probe_counts_for_the_time_it_missed() {
    // One update 1.5 s late weighs as much as the updates it stands for.
    let (mut once, mut often) = (
        Pie::new(LoadShedding::default()),
        Pie::new(LoadShedding::default()),
    );
    fed(&mut once, ms(100), 20);
    fed(&mut often, ms(100), 20);
    once.update(ms(100), ms(1500));
    fed(&mut often, ms(100), 100);
    assert!(
        once.share() > 0.5 * often.share() && once.share() > 0.1,
        "late {} vs on time {}",
        once.share(),
        often.share()
    );
}

#[test]
fn shedding_stops_once_the_delay_is_back_under_half_the_target() {
    let mut pie = Pie::new(LoadShedding::default());
    fed(&mut pie, ms(500), 100);
    assert!(sheds(&pie, 100) > 50);
    fed(&mut pie, ms(1), 2);
    if pie.share() < 0.2 {
        assert_eq!(sheds(&pie, 100), 0);
    }
    fed(&mut pie, ms(1), 400);
    assert_eq!(pie.share(), 0.0, "{pie:?}");
    assert_eq!(sheds(&pie, 100), 0);
}

#[test]
fn disabled_sheds_nothing_and_disabling_resets() {
    let mut pie = Pie::new(LoadShedding::default());
    fed(&mut pie, ms(500), 100);
    assert!(pie.share() > 0.5);
    let off = LoadShedding {
        enabled: false,
        ..LoadShedding::default()
    };
    pie.configure(&off);
    assert_eq!(pie.share(), 0.0);
    fed(&mut pie, ms(500), 100);
    assert_eq!(sheds(&pie, 100), 0);
}

#[test]
fn a_reload_keeps_the_share_and_takes_the_new_target() {
    let mut pie = Pie::new(LoadShedding::default());
    fed(&mut pie, ms(60), 200);
    let before = pie.share();
    assert!(before > 0.0);
    let relaxed = LoadShedding {
        target: HumanDuration::from_millis(200),
        ..LoadShedding::default()
    };
    pie.configure(&relaxed);
    assert_eq!(pie.share(), before, "the state survives a reload");
    // 60 ms is now under half the target: the share decays away.
    fed(&mut pie, ms(60), 500);
    assert_eq!(pie.share(), 0.0);
}
