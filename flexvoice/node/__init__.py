"""The engine node: the top layer, where the parts are put together.

`assembly.build_app` makes the aiohttp application and appends the components of
`assembly.DEFAULT_COMPONENTS` in start-up order. Each component is an aiohttp cleanup_ctx
generator in its own module here; it builds one part of the engine from the layers below
(api > flows > sip > metering > core, see the import contract in pyproject.toml), handing it
its dependencies as constructor arguments, and publishes it under a key of flexvoice.appkeys.
"""
