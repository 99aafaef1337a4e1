//! The approximate nearest-neighbour index over prompt embeddings.
