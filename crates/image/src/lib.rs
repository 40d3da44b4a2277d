//! Image store: OCI distribution client, content store by digest, layer unpack, GC.
