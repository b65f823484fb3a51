"""`bandit-service demo`: watch the bandit learn.

run.py drives simulated users through the SDK; server.py runs the service in a thread; plot.py draws.
"""

from bandit_service.demo.run import ARMS, DemoError, DemoResult, run_demo

__all__ = ["ARMS", "DemoError", "DemoResult", "run_demo"]
