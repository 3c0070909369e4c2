"""meshsim — discrete-event simulation of service meshes."""
