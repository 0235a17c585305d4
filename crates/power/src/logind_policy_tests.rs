use super::*;

fn session(id: &str, class: &str, kind: &str) -> SessionInfo {
    SessionInfo {
        id: id.into(),
        user: "ann".into(),
        class: class.into(),
        kind: kind.into(),
        state: "active".into(),
        ..SessionInfo::default()
    }
}

fn ssh(id: &str) -> SessionInfo {
    SessionInfo {
        remote: true,
        remote_host: "10.0.0.9".into(),
        ..session(id, "user", "tty")
    }
}

fn inhibitor(what: &str, mode: &str) -> Inhibitor {
    Inhibitor::from_tuple((
        what.into(),
        "backup".into(),
        "copying /home".into(),
        mode.into(),
        1000,
        4242,
    ))
}

#[test]
fn graphical_user_sessions_tell_presence_greeters_do_not() {
    for kind in ["x11", "wayland", "mir"] {
        assert!(session("2", "user", kind).is_graphical_user(), "{kind}");
    }
    assert!(!session("c1", "greeter", "wayland").is_graphical_user());
    assert!(!session("3", "user", "tty").is_graphical_user());
    assert!(!session("4", "lock-screen", "x11").is_graphical_user());
    let greeter = session("c1", "greeter", "x11");
    assert_eq!(presence_session(Some(&greeter)), None);
    let desk = session("2", "user", "wayland");
    assert_eq!(presence_session(Some(&desk)), Some(&desk));
    assert_eq!(presence_session(None), None);
}

#[test]
fn remote_sessions_are_recognised() {
    assert!(ssh("5").is_remote());
    let host_only = SessionInfo {
        remote_host: "admin-pc".into(),
        ..session("6", "user", "tty")
    };
    assert!(host_only.is_remote(), "a tty session with a remote host");
    assert!(!session("7", "user", "tty").is_remote(), "a local console");
    let background = SessionInfo {
        remote: true,
        ..session("8", "background", "unspecified")
    };
    assert!(!background.is_remote(), "not a user's session");
    let rdp = SessionInfo {
        remote: true,
        ..session("9", "user", "x11")
    };
    assert!(rdp.is_remote(), "a remote desktop");
}

#[test]
fn sleep_inhibits_are_parsed_from_colon_lists() {
    assert!(inhibits_sleep("sleep"));
    assert!(inhibits_sleep("shutdown:sleep:idle"));
    assert!(!inhibits_sleep("shutdown:idle"));
    assert!(!inhibits_sleep("sleepy"));
    assert!(!inhibits_sleep(""));
    assert!(inhibitor("shutdown:sleep", "block").blocks_sleep());
    assert!(!inhibitor("sleep", "delay").blocks_sleep());
    assert!(!inhibitor("idle", "block").blocks_sleep());
}

#[test]
fn block_inhibitors_and_remote_sessions_keep_the_desktop_awake() {
    let now = 1_000_000_000;
    let delay = inhibitor("sleep", "delay");
    assert!(sleep_blockers(
        std::slice::from_ref(&delay),
        &[],
        RemoteSessions::Block,
        now
    )
    .is_empty());
    let block = inhibitor("sleep", "block");
    let b = sleep_blockers(&[delay, block.clone()], &[], RemoteSessions::Block, now);
    assert_eq!(b, [Blocker::Inhibitor(block.clone())]);
    assert_eq!(
        b[0].to_string(),
        "backup (pid 4242, uid 1000) holds a block inhibitor on sleep: copying /home"
    );
    let desk = session("2", "user", "wayland");
    let sessions = [desk.clone(), ssh("5")];
    let b = sleep_blockers(&[], &sessions, RemoteSessions::Block, now);
    assert_eq!(b, [Blocker::RemoteSession(ssh("5"))]);
    assert_eq!(
        b[0].to_string(),
        "remote session 5 of ann from 10.0.0.9 is active (remote_sessions policy)"
    );
    assert!(sleep_blockers(&[], &sessions, RemoteSessions::Ignore, now).is_empty());
    let both = sleep_blockers(
        std::slice::from_ref(&block),
        &sessions,
        RemoteSessions::Block,
        now,
    );
    assert_eq!(both.len(), 2);
    assert!(matches!(both[0], Blocker::Inhibitor(_)), "inhibitors first");
    let closing = SessionInfo {
        state: "closing".into(),
        ..ssh("5")
    };
    assert!(sleep_blockers(&[], &[closing], RemoteSessions::Block, now).is_empty());
}

#[test]
fn an_idle_remote_session_stops_blocking_after_the_set_time() {
    let now = 1_000_000_000; // 1000 s
    let idle_since = |s: u64| SessionInfo {
        idle: true,
        idle_since_monotonic_us: s * 1_000_000,
        ..ssh("5")
    };
    let policy = RemoteSessions::IdleAfterS(600);
    assert!(sleep_blockers(&[], &[idle_since(300)], policy, now).is_empty());
    let recent = sleep_blockers(&[], &[idle_since(500)], policy, now);
    assert_eq!(recent.len(), 1);
    assert!(recent[0].to_string().contains("idle too briefly"));
    let active = SessionInfo { ..ssh("5") };
    assert_eq!(sleep_blockers(&[], &[active], policy, now).len(), 1);
    assert!(!idle_since(0).idle_for(600, 500_000_000));
}

#[test]
fn the_user_returns_when_presence_turns_active() {
    let idle = Presence::from_hint(true, 42);
    assert_eq!(idle, Presence::IdleSince(42));
    assert_eq!(Presence::from_hint(false, 42), Presence::Active);
    assert!(idle.is_return(Presence::Active));
    assert!(Presence::Unknown.is_return(Presence::Active));
    assert!(!Presence::Active.is_return(Presence::Active));
    assert!(!Presence::Active.is_return(idle));
    assert!(!idle.is_return(Presence::IdleSince(43)));
}

#[test]
fn remote_policy_from_toml() {
    #[derive(Deserialize)]
    struct C {
        remote_sessions: RemoteSessions,
    }
    let p = |t: &str| toml::from_str::<C>(t).map(|c| c.remote_sessions);
    assert_eq!(
        p("remote_sessions = \"block\"").unwrap(),
        RemoteSessions::Block
    );
    assert_eq!(
        p("remote_sessions = \"ignore\"").unwrap(),
        RemoteSessions::Ignore
    );
    assert_eq!(
        p("remote_sessions = { idle_after_s = 600 }").unwrap(),
        RemoteSessions::IdleAfterS(600)
    );
    assert!(p("remote_sessions = \"sometimes\"").is_err());
    assert_eq!(RemoteSessions::default(), RemoteSessions::Block);
}
