package events

// beforeFanout, when set, runs after a transaction that emitted events committed and before their fan-out.
// Only a binary built with the identityd_faults tag sets it (fault_on.go), so that a test can kill the
// process in exactly that window; in every other build it stays nil and nothing can set it.
var beforeFanout func()
