//! A request's body as the client sends it, telling the connection's
//! [`Activity`] whether the handler is waiting for more of it: when the
//! request's time limit passes then, the client was slow (408), not the
//! engine (503).

use crate::connections::Activity;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pub struct ClientBody {
    body: Incoming,
    activity: Arc<Activity>,
}

impl ClientBody {
    pub fn new(body: Incoming, activity: Arc<Activity>) -> Self {
        activity.set_awaiting_body(false);
        Self { body, activity }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        this.activity.set_awaiting_body(polled.is_pending());
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for ClientBody {
    /// A body let go is waited for no more.
    fn drop(&mut self) {
        self.activity.set_awaiting_body(false);
    }
}
