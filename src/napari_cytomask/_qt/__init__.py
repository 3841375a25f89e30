"""Every widget, dock and thread worker of the plugin: the only package that imports Qt."""
