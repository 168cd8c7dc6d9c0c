//! The crate's error type.

/// Errors returned by the session's application inputs.
///
/// All of them are local misuse or a limitation of the peer learnt from the protocol; the
/// session never fails because of bad input from the network (it ignores or reports it
/// through [`Event`](crate::Event)s instead).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The agent did not declare a capability the call needs.
    #[error("the agent did not declare the {capability} capability")]
    CapabilityNotDeclared {
        /// The missing agent capability.
        capability: &'static str,
    },
    /// The server does not have a capability the call needs (CAP-7, CSR-9).
    #[error("the server lacks the {capability} capability (CAP-7)")]
    ServerLacksCapability {
        /// The missing server capability.
        capability: &'static str,
    },
    /// The server's capabilities are not known yet (no reply received), so a call that
    /// depends on them cannot proceed (CAP-7).
    #[error("the server's capabilities are not known yet")]
    ServerCapabilitiesUnknown,
    /// A custom message names a capability that is not among our custom capabilities (CUS-2).
    #[error("custom capability {capability:?} is not declared in custom_capabilities")]
    CustomCapabilityNotDeclared {
        /// The capability named by the message.
        capability: String,
    },
    /// Too many custom messages are waiting to be sent (ERR-7: no growing queues); try
    /// again after some were sent.
    #[error("{pending} custom messages are already waiting to be sent")]
    CustomMessageQueueFull {
        /// How many are waiting.
        pending: usize,
    },
    /// The session was stopped.
    #[error("the session was stopped")]
    Stopped,
}
