//! iothub-query (under construction)
