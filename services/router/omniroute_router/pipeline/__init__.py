"""The request path as stages (call.py: Call, Stage, compose); pipelines.py lists them."""
