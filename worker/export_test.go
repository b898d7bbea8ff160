package worker

import "github.com/identityd/identityd/store"

// SetAfterBulkPage installs a hook called after each committed page of a bulk walk (tests simulate crashes
// with it).
func SetAfterBulkPage(w *Worker, f func(*store.BulkStep)) { w.afterBulkPage = f }
