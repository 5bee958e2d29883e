"""The call tracker: AMI events in, CallEvents out (`tracker.CallTracker`), split by event family: dial,
transfer, end, reconcile (after a reconnect), the per-call state, the channel and phone-number rules, and the
extension states. Pure: no I/O, no clock reads, no global state; `event.CallEvent` is the contract every
other part consumes. Imports nothing of the project outside this package.
"""
