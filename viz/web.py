"""``niche serve``: the replay in a web browser (trame, server-side rendering).

The server renders the same :class:`~niche.viz.scene.ReplayScene` off screen and streams images
to a ``VtkRemoteView`` in the page (rotate/zoom with the mouse as in a desktop window). The
page has the same controls as ``niche view``: a frame slider, play/pause, previous/next,
the field and how it is drawn, camera presets and one switch per cell type. It binds to
127.0.0.1 by default, so only this machine can connect; choose ``--host 0.0.0.0`` to share
it on a trusted network (there is no authentication).
"""
from __future__ import annotations

import asyncio

from .render import SceneOptions, open_scene
from .style import CAMERAS, TYPE_LABELS

__all__ = ["ReplayApp", "serve"]


class ReplayApp:
    """The trame application around one run file (one scene shared by all clients)."""

    def __init__(self, run, opts: SceneOptions | None = None, server=None, fps: float = 4.0):
        from trame.app import get_server

        self.run = run
        self.scene = open_scene(run, opts)
        self.fps = fps
        self.server = get_server(server, client_type="vue3")
        self._build_state()
        self._build_ui()

    @property
    def state(self):
        return self.server.state

    def _build_state(self) -> None:
        st, sc = self.state, self.scene
        st.trame__title = f"niche: {self.run.path.name}"
        st.frame = sc.frames.index(sc.frame)  # slider position over the stored frames
        st.n_frames = len(sc.frames)
        st.playing = False
        st.field = sc.field or "none"
        st.field_items = ["none", *self.run.field_names]
        st.field_mode = sc.field_mode if sc.field_mode != "none" else "slices"
        st.camera = sc.camera
        st.visible_types = [t for t, v in sc.visible.items() if v]
        st.day_label = self._day_label(sc.frame)
        st.frame_seconds = 0.0
        st.change("frame")(self._on_frame)
        st.change("field", "field_mode")(self._on_field)
        st.change("camera")(self._on_camera)
        st.change("visible_types")(self._on_types)
        st.change("playing")(self._on_playing)

    def _day_label(self, k: int) -> str:
        return f"day {float(self.run.times[k]):.2f} ({k + 1}/{self.run.n_frames})"

    # ------------------------------------------------------------------ state -> scene
    def _update_view(self) -> None:
        self.server.controller.view_update()

    def _on_frame(self, frame, **_) -> None:
        frames = self.scene.frames
        k = frames[min(max(int(frame), 0), len(frames) - 1)]
        if k != self.scene.frame:
            self.state.frame_seconds = round(self.scene.set_frame(k, render=False), 3)
        self.state.day_label = self._day_label(k)
        self._update_view()

    def _on_field(self, field, field_mode, **_) -> None:
        name = None if field in (None, "none") else field
        if name != self.scene.field or (name and field_mode != self.scene.field_mode):
            self.scene.set_field(name, field_mode)
        self._update_view()

    def _on_camera(self, camera, **_) -> None:
        self.scene.set_camera(camera)
        self._update_view()

    def _on_types(self, visible_types, **_) -> None:
        for t in self.scene.type_names:
            self.scene.set_type_visible(t, t in (visible_types or []))
        self._update_view()

    def _on_playing(self, playing, **_) -> None:
        if playing:
            asyncio.ensure_future(self._play())

    async def _play(self) -> None:
        while self.state.playing:
            await asyncio.sleep(1.0 / self.fps)
            with self.state:
                self.state.frame = (int(self.state.frame) + 1) % len(self.scene.frames)

    # ------------------------------------------------------------------ page
    def _build_ui(self) -> None:
        from trame.ui.vuetify3 import SinglePageWithDrawerLayout
        from trame.widgets import html
        from trame.widgets import vtk as vtk_widgets
        from trame.widgets import vuetify3 as v3

        n = len(self.scene.frames)
        with SinglePageWithDrawerLayout(self.server, full_height=True) as layout:
            layout.title.set_text(f"niche replay: {self.run.path.name}")
            with layout.toolbar:
                v3.VSpacer()
                with v3.VBtn(icon=True, click="frame = Math.max(frame - 1, 0)",
                             classes="niche-prev"):
                    v3.VIcon("mdi-skip-previous")
                with v3.VBtn(icon=True, click="playing = !playing", classes="niche-play"):
                    v3.VIcon("{{ playing ? 'mdi-pause' : 'mdi-play' }}")
                with v3.VBtn(icon=True, click=f"frame = Math.min(frame + 1, {n - 1})",
                             classes="niche-next"):
                    v3.VIcon("mdi-skip-next")
                v3.VSlider(v_model_number=("frame", self.state.frame), min=0, max=max(n - 1, 0),
                           step=1, hide_details=True, density="compact",
                           classes="niche-frame-slider mx-4", style="max-width: 480px")
                html.Div("{{ day_label }}", classes="niche-day text-body-2 mr-4",
                         style="min-width: 130px")
            with layout.drawer, v3.VContainer(classes="pa-3"):
                v3.VSelect(label="field", v_model=("field",), items=("field_items",),
                           density="compact", classes="niche-field")
                v3.VSelect(label="field shown as", v_model=("field_mode",),
                           items=("['slices', 'volume']",), density="compact")
                v3.VSelect(label="camera", v_model=("camera",),
                           items=(repr(list(CAMERAS)),), density="compact")
                html.Div("cell types", classes="text-subtitle-2 mt-2")
                for t in self.scene.type_names:
                    v3.VCheckbox(v_model=("visible_types",), value=t,
                                 label=TYPE_LABELS.get(t, t), density="compact",
                                 hide_details=True, classes=f"niche-type-{t}")
                html.Div("render {{ frame_seconds }} s/frame",
                         classes="text-caption mt-4")
            with layout.content, v3.VContainer(fluid=True, classes="pa-0 fill-height"):
                view = vtk_widgets.VtkRemoteView(self.scene.plotter.ren_win,
                                                 interactive_ratio=1, classes="niche-view")
                self.server.controller.view_update = view.update
                self.server.controller.view_reset_camera = view.reset_camera
        self.ui = layout

    def start(self, host: str = "127.0.0.1", port: int = 8080, **kw):
        """Serve until interrupted (prints the address once it is bound)."""
        self.server.controller.on_server_ready.add(
            lambda **_: print(f"niche serve: http://{host}:{self.server.port}/  "
                              "(Ctrl-C stops)", flush=True))
        try:
            return self.server.start(host=host, port=port, open_browser=False,
                                     show_connection_info=False, timeout=0, **kw)
        except OSError as e:
            raise RuntimeError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None


def serve(run, host: str = "127.0.0.1", port: int = 8080, opts: SceneOptions | None = None,
          fps: float = 4.0):
    """Serve the replay of an open run file until interrupted."""
    app = ReplayApp(run, opts, fps=fps)
    try:
        app.start(host=host, port=port)
    finally:
        app.scene.close()
