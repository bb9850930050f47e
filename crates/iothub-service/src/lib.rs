//! iothub-service (under construction)
