"""The local OpenAI-compatible API: HTTP requests become engine jobs (app.engine.jobs).

``api.create_app`` builds the Starlette app, ``schemas`` validates requests and maps them to
:class:`~app.engine.jobs.JobRequest`, ``runner.ApiServer`` runs it under uvicorn in a thread
beside the Qt event loop. The server never owns a model: every request goes through an
:class:`~app.engine.jobs.EngineGateway`.
"""
