//! Workspace root: owns the end-to-end tests and the tutorial example.
