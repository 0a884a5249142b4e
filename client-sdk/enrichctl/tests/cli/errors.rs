//! Failures: each says what to do, and the exit code says what kind it was.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_usage_errors() {
    let t = TestNode::start().await;
    let cli = t.user();
    cli.run(&["guild", "show", "general"])
        .await
        .fails(2, "is not an id: ids are numbers");
    cli.run(&["frobnicate"])
        .await
        .fails(2, "unrecognized subcommand");
    cli.run(&["channel", "create", "123"])
        .await
        .fails(2, "<NAME>");
    cli.run(&["history", "1", "--limit", "0"])
        .await
        .fails(2, "--limit");
    // No password: standard input is not a terminal and --password-stdin was not given.
    cli.run(&["register", "--username", "x", "--email", "x@example.com"])
        .await
        .fails(2, "--password-stdin");
    cli.run_with(
        &["login", "--login", "x@example.com", "--password-stdin"],
        &[],
        Some(""),
    )
    .await
    .fails(2, "no password on standard input");
    cli.run(&["--server", "localhost:8080", "whoami"])
        .await
        .fails(2, "invalid server URL");
    // Help lists the exit codes.
    let help = cli.run(&["--help"]).await;
    assert!(help.ok().contains("Exit codes:"), "{help:?}");
    assert!(help.stdout.contains("3  not logged in"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_state_and_server_failures_have_their_own_codes() {
    let t = TestNode::start().await;
    let cli = t.user();
    cli.run(&["whoami"])
        .await
        .fails(3, "run `enrichctl login --login EMAIL --password-stdin`");
    cli.run(&["guild", "list"]).await.fails(3, "not logged in");

    cli.register("carol").await;
    // A wrong password is refused; the stored login stays.
    cli.run_with(
        &["login", "--login", "carol@example.com", "--password-stdin"],
        &[],
        Some("wrong password\n"),
    )
    .await
    .fails(3, "login refused");
    let out = cli
        .run_with(
            &["login", "--login", "carol", "--password-stdin"],
            &[],
            Some(&format!("{PASSWORD}\n")),
        )
        .await;
    assert!(out.ok().contains("logged in to"), "{out:?}");

    // Unknown things are 4, refused input 7.
    cli.run(&["guild", "show", "175928847299117063"])
        .await
        .fails(4, "Unknown Guild");
    cli.run(&["guild", "create", "x"])
        .await
        .fails(7, "name: Must be between 2 and 100 in length.");

    // Without --server the last login's server is used; an unreachable one is 5.
    let offline = Cli {
        home: tempfile::tempdir().unwrap(),
        server: Some("http://127.0.0.1:9".into()),
    };
    offline
        .run_with(
            &["login", "--login", "carol", "--password-stdin"],
            &[],
            Some("x\n"),
        )
        .await
        .fails(5, "cannot reach the server");
    let implicit = Cli {
        home: tempfile::tempdir().unwrap(),
        server: None,
    };
    std::fs::create_dir_all(implicit.credentials().parent().unwrap()).unwrap();
    std::fs::copy(cli.credentials(), implicit.credentials()).unwrap();
    let me = implicit.run(&["--json", "whoami"]).await.json();
    assert_eq!(me["username"], "carol");
}
