"""The ``/v1/stream`` WebSocket: score events of ``leads.scores.v1``, live to clients."""
