"""Load balancer flow: decide (plan) and apply Proxy Protocol on Classic ELBs and NLB target groups."""
