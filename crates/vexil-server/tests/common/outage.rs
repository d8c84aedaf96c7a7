//! A TCP proxy to PostgreSQL that can be taken down (every connection cut, new ones closed at
//! once) and brought back, as an outage of the database server looks to a node.

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The address of the PostgreSQL test server, as `host:port` (what the proxy forwards to and
/// what [`Outage::via`] replaces in its URL).
pub fn postgres_address() -> String {
    let url = super::postgres_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split(['/', '?']).next().unwrap_or(host);
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    }
}

pub struct Outage {
    pub addr: std::net::SocketAddr,
    down: watch::Sender<bool>,
}

impl Outage {
    pub async fn start(upstream: String) -> Outage {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (down, watching) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if *watching.borrow() {
                    continue;
                }
                let mut cut = watching.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|d| *d) => {}
                    }
                });
            }
        });
        Outage { addr, down }
    }

    /// A URL rewrite for [`super::Server::postgres_via`] that goes through this proxy.
    pub fn via(&self, upstream: &str) -> impl Fn(&str) -> String + Send + 'static {
        let upstream = upstream.to_owned();
        let proxy = self.addr.to_string();
        move |url| url.replace(&upstream, &proxy)
    }

    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}
