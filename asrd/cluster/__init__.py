"""Cluster mode (``asrd[cluster]``): the model runs in Ray actors on the cluster's nodes.

``handle`` is the daemon's side (no Ray: the daemon never imports it); ``bridge`` is the spawned Ray
driver that owns one ``actor.NodeWorker`` per GPU (``actorbook``: its record of each actor);
``pathmap`` and ``handshake`` are what they agree on.
"""
