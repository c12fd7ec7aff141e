"""The ``fashionrec`` command: materialize assets, run studies, print reports, serve, RecBole tools."""
