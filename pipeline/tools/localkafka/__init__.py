"""``pulse kafka start|stop|status``: a local single-node Kafka broker without Docker.

Owns: ``launcher.py`` start, stop, status; ``config.py`` what the broker is
told (JVM flags, server.properties, log4j2, cluster id); ``jars.py`` the
broker's jars from Maven Central, checked against ``deploy/kafka/jars.lock``;
``java.py`` finding a Java 17+; ``probe.py`` is a cluster there;
``daemon.py`` the detached process and its pid file.

May import: :mod:`pipeline.config`, :mod:`pipeline.errors`.
"""
