"""Launch flow: configure Postfix on new instances through SSM and complete the lifecycle action."""
