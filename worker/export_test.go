package worker

import "github.com/identityd/identityd/store"

// SetAfterBulkPage installs a hook called after each committed page of a bulk walk (tests simulate crashes
// with it).
func SetAfterBulkPage(w *Worker, f func(*store.BulkStep)) { w.afterBulkPage = f }

// SetBeforeBatch installs a hook called with the ids of each shared single-session batch before it runs.
func SetBeforeBatch(w *Worker, f func([]string)) { w.beforeBatch = f }

// WaitingRedactions counts the single-session redactions of sc waiting for a shared batch.
func WaitingRedactions(w *Worker, sc store.Scope) int { return w.coalescer().Waiting(sc) }

// SetDrainLimit sets how many shared batches of one scope may run at once. Call it before the worker's first
// redaction.
func SetDrainLimit(w *Worker, n int) { w.drainLimit = n }
