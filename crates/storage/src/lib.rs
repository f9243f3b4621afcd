//! sea-orm entities and repositories implementing the domain's storage ports.
