//! What other crates' tests rely on from `iothub_emulator::test_support`, checked on the machine
//! that runs them.

use std::io::ErrorKind;

use iothub_emulator::test_support::RefusedPort;

#[tokio::test]
async fn a_refused_port_refuses_connections_and_cannot_be_taken_while_held() {
    let refused = RefusedPort::reserve();
    let port = refused.port();
    for _ in 0..3 {
        let error = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect_err("nothing listens on a refused port");
        assert_eq!(error.kind(), ErrorKind::ConnectionRefused, "{error}");
    }
    // A listener elsewhere (tokio sets SO_REUSEADDR) cannot bind the held port.
    let taken = tokio::net::TcpListener::bind(("127.0.0.1", port)).await;
    assert_eq!(
        taken.map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::AddrInUse)
    );
    drop(refused);
    // Released: the port is free again.
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the port is free once the RefusedPort is dropped");
}
