//! Delivery of one stream of items to any number of subscribers, each with its own unbounded
//! queue so a slow reader never makes the connection task wait or drop items for others.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

/// The sending side, shared by the connection task and the client handles.
#[derive(Debug)]
pub(crate) struct Fanout<T> {
    // std Mutex: held only for a push or a retain, never across an await.
    subscribers: Mutex<Option<Vec<mpsc::UnboundedSender<T>>>>,
}

impl<T: Clone> Fanout<T> {
    pub(crate) fn new() -> Self {
        Fanout {
            subscribers: Mutex::new(Some(Vec::new())),
        }
    }

    /// A new subscriber sees every item sent from now on; after [`Fanout::close`] its stream
    /// ends at once.
    pub(crate) fn subscribe(&self) -> Subscription<T> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut guard) = self.subscribers.lock() {
            if let Some(subs) = guard.as_mut() {
                subs.push(tx);
            }
        }
        Subscription { rx }
    }

    pub(crate) fn send(&self, item: &T) {
        if let Ok(mut guard) = self.subscribers.lock() {
            if let Some(subs) = guard.as_mut() {
                subs.retain(|s| s.send(item.clone()).is_ok());
            }
        }
    }

    /// Ends every subscription (after the items already queued).
    pub(crate) fn close(&self) {
        if let Ok(mut guard) = self.subscribers.lock() {
            *guard = None;
        }
    }
}

/// A stream of items from the client: desired updates or connection events.
///
/// Implements [`futures_util::Stream`]; [`Subscription::next`] is the same without the trait.
/// The stream ends when the client is closed.
#[derive(Debug)]
pub struct Subscription<T> {
    rx: mpsc::UnboundedReceiver<T>,
}

impl<T> Subscription<T> {
    /// The next item, or `None` once the client is closed and everything was read.
    pub async fn next(&mut self) -> Option<T> {
        self.rx.recv().await
    }
}

impl<T> futures_util::Stream for Subscription<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_subscriber_gets_every_item_then_the_end() {
        let f = Fanout::new();
        let mut a = f.subscribe();
        f.send(&1);
        let mut b = f.subscribe();
        f.send(&2);
        f.close();
        assert_eq!(a.next().await, Some(1));
        assert_eq!(a.next().await, Some(2));
        assert_eq!(a.next().await, None);
        assert_eq!(b.next().await, Some(2));
        assert_eq!(b.next().await, None);
        assert_eq!(f.subscribe().next().await, None);
    }

    #[tokio::test]
    async fn dropped_subscribers_are_forgotten() {
        let f = Fanout::new();
        drop(f.subscribe());
        f.send(&1);
        assert_eq!(
            f.subscribers.lock().unwrap().as_ref().map(Vec::len),
            Some(0)
        );
    }
}
