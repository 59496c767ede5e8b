"""Generated gRPC / protobuf stubs for protos/omniroute/v1 (run `make protos`)."""
