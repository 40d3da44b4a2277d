//! The CRI gRPC services.
