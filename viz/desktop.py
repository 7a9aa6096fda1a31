"""``niche view``: the replay in an interactive pyvista window.

Controls (all in the window):

- frame slider along the bottom; keys ``Left``/``Right`` step one frame, ``Home``/``End``
  jump to the first/last frame;
- play/pause: the green button (bottom left) or the ``space`` key;
- field selector: the slider at the top lists ``none`` and every stored field; ``v``
  switches between slices and volume rendering;
- one toggle button per cell type (coloured like the type) on the right of the 3D view;
- camera presets on keys ``1``-``4`` (iso, front, side, top); the mouse rotates/zooms.

:func:`build_viewer` wires everything onto a scene and returns the callbacks, so the
wiring is tested off screen; :func:`view` opens the window.
"""
from __future__ import annotations

from types import SimpleNamespace

from .render import SceneOptions, open_scene
from .style import CAMERAS, TYPE_COLORS

__all__ = ["build_viewer", "view"]


def build_viewer(run, opts: SceneOptions | None = None, off_screen: bool = False,
                 fps: float = 4.0) -> SimpleNamespace:
    """Add the interactive controls to a replay scene.

    Returns:
        A namespace with ``scene``, ``plotter`` and the callbacks ``set_frame(k)``,
        ``step(d)``, ``toggle_play()``, ``set_field(name)``, ``toggle_mode()``,
        ``toggle_type(name, on)``, ``tick()`` (one play-timer tick) and ``state``.
    """
    scene = open_scene(run, opts, off_screen=off_screen)
    p = scene.plotter
    p.subplot(0, 0)
    frames = scene.frames  # the slider runs over the stored frames (all at level full)
    n = len(frames)
    st = SimpleNamespace(playing=False, frame=frames.index(scene.frame))
    fields = ["none", *run.field_names]
    ui = SimpleNamespace(scene=scene, plotter=p, state=st)

    def set_frame(k):
        k = round(k) % n
        st.frame = k
        if ui.slider is not None:
            rep = ui.slider.GetRepresentation()
            if round(rep.GetValue()) != k:
                rep.SetValue(k)
        if frames[k] != scene.frame:
            scene.set_frame(frames[k])  # renders, slider included

    def step(d):
        set_frame(st.frame + d)

    def toggle_play():
        st.playing = not st.playing
        if ui.play_button is not None:
            ui.play_button.GetRepresentation().SetState(int(st.playing))

    def tick():
        if st.playing:
            step(1)

    def set_field(name):
        scene.set_field(None if name == "none" else name)

    def toggle_mode():
        if scene.field is not None:
            scene.set_field(scene.field, "volume" if scene.field_mode == "slices" else "slices")

    def toggle_type(name, on):
        scene.set_type_visible(name, bool(on))

    ui.slider = ui.play_button = None
    if n > 1:
        ui.slider = p.add_slider_widget(
            set_frame, [0, n - 1], value=frames.index(scene.frame), title="frame", fmt="%.0f",
            pointa=(0.34, 0.06), pointb=(0.95, 0.06), style="modern",
            interaction_event="always")
    ui.play_button = p.add_checkbox_button_widget(
        lambda on: toggle_play() if bool(on) != st.playing else None, value=False,
        position=(10, 10), size=28, color_on="#2fb344", color_off="#666666")
    p.add_text_slider_widget(set_field, fields, value=fields.index(scene.field or "none"),
                             pointa=(0.35, 0.93), pointb=(0.75, 0.93), style="modern")
    for i, t in enumerate(scene.type_names):
        p.add_checkbox_button_widget(
            lambda on, t=t: toggle_type(t, on), value=scene.visible[t],
            position=(10, 260 + 34 * (len(scene.type_names) - 1 - i)), size=26,
            color_on=TYPE_COLORS[t], color_off="#444444")
    keys = {"Left": lambda: step(-1), "Right": lambda: step(1), "Home": lambda: set_frame(0),
            "End": lambda: set_frame(n - 1), "space": toggle_play, "v": toggle_mode}
    for i, cam in enumerate(CAMERAS):
        keys[str(i + 1)] = (lambda c=cam: scene.set_camera(c))
    for key, fn in keys.items():
        p.add_key_event(key, fn)
    ui.fps = fps
    ui.__dict__.update(set_frame=set_frame, step=step, toggle_play=toggle_play, tick=tick,
                       set_field=set_field, toggle_mode=toggle_mode, toggle_type=toggle_type)
    return ui


def view(run, opts: SceneOptions | None = None, fps: float = 4.0) -> None:
    """Open the interactive window (blocks until it is closed)."""
    from .offscreen import has_display

    if not has_display():
        raise RuntimeError("niche view needs a display (none found: DISPLAY is not set); "
                           "use 'niche render' for pictures and movies or 'niche serve' "
                           "for a browser")
    ui = build_viewer(run, opts, off_screen=False, fps=fps)
    p = ui.plotter
    p.iren.add_observer("TimerEvent", lambda *_: ui.tick())
    p.iren.create_timer(int(1000 / fps), repeating=True)
    p.show(title=f"niche: {run.path.name}")
