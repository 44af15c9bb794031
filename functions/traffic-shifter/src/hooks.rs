//! Pause points for tests that must land one command inside another's write
//! window — compiled only for tests (`test-hooks`), never into the Lambda.
//!
//! The race the follow step guards (a tick records a step, a rollback records
//! and writes 100 % live, then the tick's late write lands) is narrower than a
//! call to moto, so random delays never produce it; holding the writer between
//! its record and its listener write does, every time.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Hooks {
    armed: AtomicBool,
    skip_follow: AtomicBool,
    paused: Notify,
    release: Notify,
}

impl Hooks {
    /// The next writer of this shifter to record a change stops before writing
    /// the listeners, until [`Hooks::release`].
    pub fn hold_next_write(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Disarms a hold that no writer reached (it lost the record race).
    pub fn disarm(&self) -> bool {
        self.armed.swap(false, Ordering::SeqCst)
    }

    /// Resolves once a writer is held between its record and its write.
    pub async fn paused(&self) {
        self.paused.notified().await;
    }

    pub fn release(&self) {
        self.release.notify_one();
    }

    /// Turns the re-read-and-rewrite after a write off — only to show that the
    /// interleaving test fails without it.
    pub fn skip_follow(&self, skip: bool) {
        self.skip_follow.store(skip, Ordering::SeqCst);
    }

    pub(crate) fn follow_skipped(&self) -> bool {
        self.skip_follow.load(Ordering::SeqCst)
    }

    pub(crate) async fn write_window(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.paused.notify_one();
            self.release.notified().await;
        }
    }
}
