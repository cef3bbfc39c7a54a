"""Object meshes that records name (``objects[].mesh``): mesh files (YCB models, any trimesh format)
and the procedural ``world:<kind>`` shapes. ``shapes.py`` builds the procedural shapes; ``meshes.py``
resolves a record's mesh reference and loads it once per path."""
