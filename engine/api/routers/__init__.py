"""One router per resource; `engine.api.app.create_app` includes them in this order."""
