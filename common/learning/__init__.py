"""Models and local training (plain and DP-SGD), shared by the clients and the server's root set."""
