//! The balancer over real loopback sockets: per-connection picks, a killed member's connections
//! reset, a powered-off member's connections silent.

use std::{net::SocketAddr, time::Duration};

use live::Balancer;
use probe::CrashKind;
use sim::Policy;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// A member that greets each connection with its name, then echoes.
async fn member(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = s.write_all(format!("{name}\n").as_bytes()).await;
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn farm(policy: Policy) -> (Balancer, SocketAddr) {
    let mut members = Vec::new();
    for name in ["node-1", "node-2", "node-3"] {
        members.push((name.to_owned(), member(name).await));
    }
    let b = Balancer::new(policy, &members, 1);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = b.clone();
    tokio::spawn(async move { server.serve(l).await });
    (b, addr)
}

/// Connects and reads the member's greeting.
async fn greeted(addr: SocketAddr) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("greeted in time")
        .unwrap();
    (s, String::from_utf8_lossy(&buf[..n]).trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_connection_goes_to_one_member_in_turn_and_bytes_flow_both_ways() {
    let (_b, addr) = farm(Policy::RoundRobin).await;
    let mut names = Vec::new();
    for _ in 0..4 {
        let (mut s, name) = greeted(addr).await;
        s.write_all(b"ping").await.unwrap();
        let mut echo = [0u8; 4];
        s.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"ping");
        names.push(name);
    }
    assert_eq!(names, ["node-1", "node-2", "node-3", "node-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_resets_its_connections_and_gets_no_new_ones() {
    let (b, addr) = farm(Policy::RoundRobin).await;
    let (mut s, name) = greeted(addr).await;
    assert_eq!(name, "node-1");
    b.down("node-1", CrashKind::Kill);
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("the kill is seen at once");
    assert!(
        matches!(r, Ok(0))
            || r.as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{r:?}"
    );
    for _ in 0..3 {
        assert_ne!(greeted(addr).await.1, "node-1");
    }
    b.up("node-1", None);
    let back: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(greeted(addr).await.1);
        }
        v
    };
    assert!(back.contains(&"node-1".to_owned()), "{back:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_powered_off_member_goes_silent() {
    let (b, addr) = farm(Policy::RoundRobin).await;
    let (mut s, _) = greeted(addr).await;
    b.down("node-1", CrashKind::PowerCut);
    // Writes still go somewhere; nothing comes back and the connection stays open.
    s.write_all(b"hello?").await.unwrap();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await;
    assert!(
        r.is_err(),
        "a powered-off member must not answer or close: {r:?}"
    );
    assert_eq!(
        b.open("node-1"),
        0,
        "the member holds no connection any more"
    );
    // When every member is down, a new connection is closed at once.
    b.down("node-2", CrashKind::Kill);
    b.down("node-3", CrashKind::Kill);
    // (The reset may even beat the handshake's end.)
    if let Ok(mut c) = TcpStream::connect(addr).await {
        let r = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("closed at once");
        assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_refuses_connects_while_its_host_is_down_and_reopens_at_the_same_address() {
    let target = member("node-1").await;
    let front = Balancer::new(Policy::RoundRobin, &[("node-1".to_owned(), target)], 1);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let serving = front.clone();
    tokio::spawn(async move { serving.serve_front(l).await });
    assert_eq!(greeted(addr).await.1, "node-1");
    front.down("node-1", CrashKind::Kill);
    // The port closes: a connect is refused (a Host-Id fallback timer must not see success).
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "connects to a dead host's address must be refused");
    front.up("node-1", None);
    let mut back = None;
    for _ in 0..50 {
        if let Ok(s) = TcpStream::connect(addr).await {
            back = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut s = back.expect("the address opens again");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"node-1\n");
}
