"""The replay scene: one pyvista plotter showing one frame of a run file at a time.

Layout: the 3D view on the left, the readout curves (BV/TV; cell counts per type, log
scale) on the right with a red cursor at the current frame. The 3D view holds

- the bone surface, an isosurface of the frame's bone mask (flying edges on the voxel
  centres, padded so that cut trabeculae are closed): ivory, with bone formed since the
  first frame in yellow, and a translucent red surface around bone resorbed since then;
- the cells as spheres (sphere impostors, one actor per type so each can be hidden), sized
  and coloured by type and state (:mod:`niche.viz.style`), with a legend giving counts;
- one cytokine field as three orthogonal voxel slices or as a volume rendering, with a
  colour bar in the field's units; bone voxels are grey in the slices;
- the scenario, simulated day and frame number.

:meth:`ReplayScene.set_frame` reads only that frame (bone, one field, its agents) from
the lazy :class:`niche.io.RunFile` and updates the actors in place; the first frame's
bone (the reference for formed/resorbed) is read once.

Coordinates are um with voxel ``(z, y, x)`` centred at ``((x, y, z) + 0.5) * voxel_um``.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pyvista as pv

from niche.io import RunFile, RunFileError

from . import style

__all__ = ["FIELD_MODES", "ReplayScene"]

FIELD_MODES = ("slices", "volume", "none")
_CMAP = "viridis"


def _padded_points(mask_zyx: np.ndarray, h: float) -> pv.ImageData:
    """Point-data grid of a voxel mask at voxel centres, padded by one empty layer."""
    Z, Y, X = mask_zyx.shape
    g = pv.ImageData(dimensions=(X + 2, Y + 2, Z + 2), spacing=(h, h, h),
                     origin=(-0.5 * h, -0.5 * h, -0.5 * h))
    g.point_data["m"] = np.pad(mask_zyx, 1).ravel()
    return g


def _isosurface(grid: pv.ImageData, extra: str | None = None) -> pv.PolyData:
    """Flying-edges isosurface at 0.5 of point array ``m`` (``extra`` interpolated on it)."""
    import vtk

    fe = vtk.vtkFlyingEdges3D()
    fe.SetInputData(grid)
    fe.SetValue(0, 0.5)
    fe.SetInputArrayToProcess(0, 0, 0, vtk.vtkDataObject.FIELD_ASSOCIATION_POINTS, "m")
    fe.ComputeNormalsOn()
    fe.ComputeScalarsOff()
    fe.SetInterpolateAttributes(extra is not None)
    fe.Update()
    return pv.wrap(fe.GetOutput())


def _empty_cloud() -> pv.PolyData:
    pd = pv.PolyData(np.zeros((1, 3)))
    pd.point_data["rgb"] = np.zeros((1, 3), np.uint8)
    pd.point_data["r"] = np.zeros(1, np.float32)
    return pd


class ReplayScene:
    """A run file replayed in a pyvista plotter, one frame at a time.

    Args:
        run: an open :class:`~niche.io.RunFile`.
        field: the field shown (default: TNF if present, else the first).
        field_mode: ``"slices"``, ``"volume"`` or ``"none"``.
        slices: voxel indices ``(z, y, x)`` of the three slices, ``"walls"`` (default: the
            floor and the two back walls seen by the ``iso`` camera) or ``"center"``.
        visible_types: cell types shown (default all).
        charts: show the readout curves beside the 3D view.
        window_size: pixels (width, height).
        off_screen: render without a window (pictures, movies, the browser viewer).
        camera: a preset of :data:`niche.viz.style.CAMERAS`.
        clim: fixed colour range of the field; default: 0 to the largest value seen so
            far in this scene (it only grows while scrubbing, so colours stay comparable).
        frame: the frame shown first.
        antialias: keep the plotter's multisampling (False: none, ~3x faster in software).
    """

    def __init__(self, run: RunFile, *, field: str | None = None, field_mode: str = "slices",
                 slices: str | Sequence[int] = "walls", visible_types: Sequence[str] | None = None,
                 charts: bool = True, window_size: tuple[int, int] = (1280, 720),
                 off_screen: bool = True, camera: str = "iso",
                 clim: tuple[float, float] | None = None, frame: int = 0,
                 antialias: bool = True):
        if run.n_frames == 0:
            raise RunFileError(f"{str(run.path)!r} has no complete frame to show")
        if field_mode not in FIELD_MODES:
            raise ValueError(f"field mode {field_mode!r}: choose one of {', '.join(FIELD_MODES)}")
        self.run = run
        self.h = run.voxel_um
        self.shape = run.shape
        self.type_names = run.type_names
        unknown = set(visible_types or ()) - set(self.type_names)
        if unknown:
            raise ValueError(f"unknown cell type(s) {sorted(unknown)}; "
                             f"types are {', '.join(self.type_names)}")
        self.visible = {t: (visible_types is None or t in visible_types)
                        for t in self.type_names}
        names = run.field_names
        if field is None:
            field = "TNF" if "TNF" in names else (names[0] if names else None)
        if field is not None and field not in names:
            raise KeyError(f"no field {field!r} in run (has {', '.join(names)})")
        self.field = field
        self.field_mode = field_mode if field is not None else "none"
        self._fixed_clim = clim
        self._clim: dict[str, tuple[float, float]] = {}
        self.charts = charts
        if camera not in style.CAMERAS:
            raise ValueError(f"camera {camera!r}: choose one of {', '.join(style.CAMERAS)}")
        self._slice_idx = self._slice_indices(slices)
        kw = {"off_screen": off_screen, "window_size": list(window_size), "border": False}
        if charts:
            kw.update(shape=(2, 2), col_weights=[3, 1.25], groups=[(np.s_[:], 0)])
        self.plotter = p = pv.Plotter(**kw)
        p.theme.allow_empty_mesh = True  # no resorbed bone yet, a type with no cells
        if not antialias:
            p.ren_win.SetMultiSamples(0)
        p.subplot(0, 0)
        p.set_background(style.BACKGROUND)
        #: the frames this scene can show: those at which bone (and agents) are stored (all
        #: frames at output level full; the first and last at level summary)
        self.frames = [int(k) for k in run.bone_frames]
        self.bone0 = run.bone(self.frames[0]).astype(bool)
        self._build_bone()
        self._build_cells()
        self._build_field()
        self._build_charts()
        self._build_overlays()
        self.frame = -1
        self.last_update_s = 0.0
        self.camera = camera
        self.set_camera(camera)
        self.set_frame(frame)

    # ------------------------------------------------------------------ building
    def _slice_indices(self, slices) -> tuple[int, int, int]:
        Z, Y, X = self.shape
        if isinstance(slices, str):
            if slices == "walls":
                return 0, Y - 1, 0
            if slices == "center":
                return Z // 2, Y // 2, X // 2
            raise ValueError(f"slices {slices!r}: 'walls', 'center' or z,y,x voxel indices")
        z, y, x = (int(v) for v in slices)
        if not (0 <= z < Z and 0 <= y < Y and 0 <= x < X):
            raise ValueError(f"slices {(z, y, x)} outside the lattice {self.shape} (z, y, x)")
        return z, y, x

    def _build_bone(self) -> None:
        p = self.plotter
        self.bone_mesh = pv.PolyData()
        self.resorbed_mesh = pv.PolyData()
        self.bone_actor = p.add_mesh(self.bone_mesh, scalars=None, color=style.BONE_RGB,
                                     smooth_shading=True, specular=0.2, name="bone",
                                     reset_camera=False)
        self.resorbed_actor = p.add_mesh(self.resorbed_mesh, color=style.RESORBED_RGB,
                                         opacity=0.45, name="resorbed", reset_camera=False)

    def _build_cells(self) -> None:
        p = self.plotter
        self.cell_meshes: dict[str, pv.PolyData] = {}
        self.cell_actors = {}
        for t in self.type_names:
            m = _empty_cloud()
            a = p.add_mesh(m, style="points_gaussian", scalars="rgb", rgb=True,
                           render_points_as_spheres=True, emissive=False, name=f"cells_{t}",
                           reset_camera=False)
            a.mapper.SetScaleArray("r")
            a.mapper.SetScaleFactor(1.0)
            self.cell_meshes[t], self.cell_actors[t] = m, a
        self.counts = {t: 0 for t in self.type_names}

    def _build_field(self) -> None:
        h = self.h
        Z, Y, X = self.shape
        kz, ky, kx = self._slice_idx
        self.slice_meshes = [
            pv.ImageData(dimensions=(X + 1, Y + 1, 1), spacing=(h, h, h), origin=(0, 0, (kz + .5) * h)),
            pv.ImageData(dimensions=(X + 1, 1, Z + 1), spacing=(h, h, h), origin=(0, (ky + .5) * h, 0)),
            pv.ImageData(dimensions=(1, Y + 1, Z + 1), spacing=(h, h, h), origin=((kx + .5) * h, 0, 0)),
        ]
        for m in self.slice_meshes:
            m.cell_data["c"] = np.zeros(m.n_cells, np.float32)
        self.volume_grid = pv.ImageData(dimensions=(X, Y, Z), spacing=(h, h, h),
                                        origin=(0.5 * h, 0.5 * h, 0.5 * h))
        self.volume_grid.point_data["c"] = np.zeros(X * Y * Z, np.float32)
        self.slice_actors = []
        self.volume_actor = None
        self._bar_title = None
        self._field_data = None
        self._add_field_actors()

    def _units(self) -> str:
        return str(self.run.h5["fields"][self.field].attrs.get("units", "")) if self.field else ""

    def _add_field_actors(self) -> None:
        p = self.plotter
        p.subplot(0, 0)
        for a in self.slice_actors:
            p.remove_actor(a, render=False)
        if self.volume_actor is not None:
            p.remove_actor(self.volume_actor, render=False)
        if self._bar_title is not None and self._bar_title in p.scalar_bars:
            p.remove_scalar_bar(self._bar_title, render=False)
        self.slice_actors, self.volume_actor, self._bar_title = [], None, None
        if self.field_mode == "none":
            return
        title = f"{self.field} ({self._units()})"
        bar = {"title": title, "vertical": True, "position_x": 0.87, "position_y": 0.25,
               "height": 0.5, "width": 0.05, "color": "white", "fmt": "%.3g",
               "title_font_size": 14, "label_font_size": 12}
        self._bar_title = title
        if self.field_mode == "slices":
            for i, m in enumerate(self.slice_meshes):
                self.slice_actors.append(p.add_mesh(
                    m, scalars="c", cmap=_CMAP, nan_color="#555555", show_scalar_bar=(i == 0),
                    scalar_bar_args=bar, name=f"slice_{i}", reset_camera=False,
                    lighting=False))
        else:
            self.volume_actor = p.add_volume(self.volume_grid, scalars="c", cmap=_CMAP,
                                             opacity="linear", opacity_unit_distance=3 * self.h,
                                             scalar_bar_args=bar,
                                             name="volume", reset_camera=False)
            self.volume_grid = self.volume_actor.mapper.dataset  # add_volume copies its input

    def _build_charts(self) -> None:
        self.cursors = []
        if not self.charts:
            return
        p = self.plotter
        ro = self.run.readouts
        t = self.run.times
        p.subplot(0, 1)
        c1 = pv.Chart2D(x_label="day", y_label="BV/TV")
        c1.title = "bone volume fraction"
        if "bv_tv" in ro:
            c1.line(t, ro["bv_tv"].to_numpy(), color="k", width=2.0)
        c1.background_color = "white"
        p.add_chart(c1)
        p.subplot(1, 1)
        c2 = pv.Chart2D(x_label="day", y_label="cells (log)")
        c2.title = "cell counts"
        top = 1.0
        for name in self.type_names:
            col = f"n_{name}"
            if col in ro:
                y = np.maximum(ro[col].to_numpy(), 0.8)
                top = max(top, float(y.max()))
                c2.line(t, y, color=style.TYPE_COLORS[name], width=2.0,
                        label=style.TYPE_LABELS[name])
        c2.y_axis.log_scale = True
        c2.background_color = "white"
        p.add_chart(c2)
        lo1, hi1 = ((float(ro["bv_tv"].min()), float(ro["bv_tv"].max())) if "bv_tv" in ro
                    else (0.0, 1.0))
        pad = max(1e-4, 0.05 * (hi1 - lo1))
        for chart, (lo, hi) in ((c1, (lo1 - pad, hi1 + pad)), (c2, (0.8, top * 8.0))):
            chart.y_range = [lo, hi]
            if t.size > 1:
                chart.x_range = [float(t[0]), float(t[-1])]
            self.cursors.append((chart.line([t[0], t[0]], [lo, hi], color="r", width=1.5),
                                 (lo, hi)))
        p.subplot(0, 0)

    # ------------------------------------------------------------------ updating
    def _update_bone(self, k: int) -> None:
        bone = self.run.bone(k).astype(bool)
        g = _padded_points(bone.view(np.uint8), self.h)
        g.point_data["new"] = np.pad(bone & ~self.bone0, 1).astype(np.float32).ravel()
        surf = _isosurface(g, extra="new")
        if surf.n_points:
            new = np.asarray(surf.point_data["new"]) > 0.25
            rgb = np.where(new[:, None], style.hex_rgb(style.NEW_BONE_RGB),
                           style.hex_rgb(style.BONE_RGB))
            surf.point_data["rgb"] = np.round(rgb * 255).astype(np.uint8)
        self.bone_mesh.copy_from(surf, deep=False)
        if surf.n_points:
            self.bone_actor.mapper.SetScalarModeToUsePointFieldData()
            self.bone_actor.mapper.SelectColorArray("rgb")
            self.bone_actor.mapper.SetColorModeToDirectScalars()
            self.bone_actor.mapper.ScalarVisibilityOn()
        resorbed = self.bone0 & ~bone
        self.resorbed_mesh.copy_from(
            _isosurface(_padded_points(resorbed.view(np.uint8), self.h))
            if resorbed.any() else pv.PolyData(), deep=False)
        self.bone_voxels = int(bone.sum())
        self.formed_voxels = int((bone & ~self.bone0).sum())
        self.resorbed_voxels = int(resorbed.sum())
        self._bone_now = bone

    def _update_cells(self, k: int) -> None:
        ag = self.run.agents(k)
        types = ag["type"].to_numpy()
        xyz = (np.stack([ag["x"].to_numpy(), ag["y"].to_numpy(), ag["z"].to_numpy()], 1)
               .astype(np.float32) + 0.5) * self.h
        state, nuclei = ag["state"].to_numpy(), ag["nuclei"].to_numpy()
        for code, t in enumerate(self.type_names):
            sel = types == code
            n = int(sel.sum())
            self.counts[t] = n
            mesh = self.cell_meshes[t]
            if n == 0:
                self.cell_actors[t].visibility = False
                continue
            pd = pv.PolyData(xyz[sel])
            pd.point_data["rgb"] = style.cell_rgb(t, state[sel])
            pd.point_data["r"] = style.cell_radius_vox(t, nuclei[sel]) * self.h
            mesh.copy_from(pd, deep=False)
            self.cell_actors[t].visibility = self.visible[t]

    def _update_field(self, k: int, reread: bool = True) -> None:
        if self.field_mode == "none":
            return
        self._field_missing = k not in set(int(j) for j in self.run.field_frames(self.field))
        if self._field_missing:  # a reduced output level: shown grey, said in the overlay
            self._field_data = np.full(self.shape, np.nan, np.float32)
        elif reread or self._field_data is None:
            self._field_data = self.run.field(self.field, k).astype(np.float32)
        f = self._field_data
        lo, hi = self._range(f)
        bone = self._bone_now
        kz, ky, kx = self._slice_idx
        if self.field_mode == "slices":
            for m, sl in zip(self.slice_meshes, (np.s_[kz], np.s_[:, ky], np.s_[:, :, kx])):
                v = f[sl].copy()
                v[bone[sl]] = np.nan
                m.cell_data["c"] = v.ravel()
                m.Modified()
            for a in self.slice_actors:
                a.mapper.scalar_range = (lo, hi)
        else:
            self.volume_grid.point_data["c"] = f.ravel()
            self.volume_grid.Modified()
            lut = self.volume_actor.mapper.lookup_table
            if tuple(lut.scalar_range) != (lo, hi):
                lut.scalar_range = (lo, hi)
                self.volume_actor.prop.apply_lookup_table(lut)

    def _range(self, f: np.ndarray) -> tuple[float, float]:
        if self._fixed_clim is not None:
            return tuple(map(float, self._fixed_clim))
        if not np.isfinite(f).any():
            return self._clim.get(self.field, (0.0, 1.0))
        hi = float(np.nanmax(f)) if f.size else 0.0
        lo0, hi0 = self._clim.get(self.field, (0.0, 0.0))
        lo, hi = min(lo0, float(np.nanmin(f)), 0.0), max(hi0, hi)
        if hi <= lo:
            hi = lo + 1.0
        self._clim[self.field] = (lo, hi)
        return lo, hi

    def _build_overlays(self) -> None:
        p = self.plotter
        p.subplot(0, 0)
        self.time_actor = p.add_text(" \n ", position="upper_left", font_size=11, color="white",
                                     name="time", render=False)
        entries = [[style.TYPE_LABELS[t], style.TYPE_COLORS[t]] for t in self.type_names]
        entries += [["bone", style.BONE_RGB], ["formed bone", style.NEW_BONE_RGB],
                    ["resorbed bone", style.RESORBED_RGB]]
        self.legend = p.add_legend(entries, bcolor="#2b2f38", size=(0.27, 0.27),
                                   loc="lower left", face="circle", name="legend",
                                   background_opacity=0.85)

    def _legend_labels(self) -> list[str]:
        out = []
        for t in self.type_names:
            hidden = "" if self.visible[t] else ", hidden"
            out.append(f"{style.TYPE_LABELS[t]} ({self.counts[t]}{hidden})")
        um3 = self.h ** 3 * 1e-9  # voxel volume, mm^3
        out += [f"bone (BV {self.bone_voxels * um3:.3g} mm^3)",
                f"formed bone (+{self.formed_voxels} vox)",
                f"resorbed bone (-{self.resorbed_voxels} vox)"]
        return out

    def _update_overlays(self, k: int) -> None:
        name = self.run.attrs.get("scenario_name", "")
        t = float(self.run.times[k])
        self.time_actor.set_text(
            "upper_left", f"{name}  seed {self.run.attrs.get('seed', '')}\n"
            f"day {t:.2f}   frame {k + 1}/{self.run.n_frames}{self._stored_note(k)}")
        for i, label in enumerate(self._legend_labels()):
            self.legend.SetEntryString(i, label)
        for line, (lo, hi) in self.cursors:
            line.update([t, t], [lo, hi])

    def _stored_note(self, k: int) -> str:
        """What a reduced output level leaves out at frame ``k`` (empty at level full)."""
        level = self.run.level
        if level == "full":
            return ""
        note = f"   (output level {level}: {len(self.frames)} of {self.run.n_frames} frames stored"
        if self.field_mode != "none" and getattr(self, "_field_missing", False):
            note += f"; {self.field} not stored at this frame"
        return note + ")"

    def set_frame(self, k: int, render: bool = True) -> float:
        """Show frame ``k`` of the run (negative counts from the end); returns the seconds it
        took. ``k`` must be one of :attr:`frames` (at output level full: any frame)."""
        t0 = time.perf_counter()
        n = self.run.n_frames
        k = int(k) + (n if int(k) < 0 else 0)
        if not 0 <= k < n:
            raise IndexError(f"frame {k} out of range (file has {n} frames)")
        self._update_bone(k)
        self._update_cells(k)
        self._update_field(k)
        self._update_overlays(k)
        self.frame = k
        if render:
            self.plotter.render()
        self.last_update_s = time.perf_counter() - t0
        return self.last_update_s

    def set_field(self, name: str | None, mode: str | None = None) -> None:
        """Show field ``name`` (None: no field) as ``mode`` (slices/volume/none)."""
        if name is not None and name not in self.run.field_names:
            raise KeyError(f"no field {name!r} in run (has {', '.join(self.run.field_names)})")
        if mode is not None and mode not in FIELD_MODES:
            raise ValueError(f"field mode {mode!r}: choose one of {', '.join(FIELD_MODES)}")
        self.field = name
        self.field_mode = "none" if name is None else (mode or self.field_mode)
        self._field_data = None
        self._add_field_actors()
        if self.frame >= 0:
            self._update_field(self.frame)
            self.plotter.render()

    def set_clim(self, clim: tuple[float, float] | None) -> None:
        """Fix the field's colour range (None: 0 to the largest value seen so far)."""
        self._fixed_clim = None if clim is None else tuple(map(float, clim))
        if self.frame >= 0:
            self._update_field(self.frame, reread=False)
            self.plotter.render()

    def set_type_visible(self, type_name: str, visible: bool) -> None:
        """Show or hide the cells of one type."""
        if type_name not in self.visible:
            raise KeyError(f"no cell type {type_name!r} (types: {', '.join(self.type_names)})")
        self.visible[type_name] = bool(visible)
        self.cell_actors[type_name].visibility = bool(visible) and self.counts[type_name] > 0
        if self.frame >= 0:
            self._update_overlays(self.frame)
            self.plotter.render()

    def set_camera(self, preset: str) -> None:
        """Point the camera as preset ``preset`` (``iso``, ``front``, ``side``, ``top``)."""
        if preset not in style.CAMERAS:
            raise ValueError(f"camera {preset!r}: choose one of {', '.join(style.CAMERAS)}")
        Z, Y, X = self.shape
        h = self.h
        centre = np.array([X, Y, Z], float) * h / 2
        direction, up = style.CAMERAS[preset]
        d = np.asarray(direction, float)
        p = self.plotter
        p.subplot(0, 0)
        p.camera_position = [tuple(centre + d / np.linalg.norm(d) * 4 * centre.max()),
                             tuple(centre), up]
        p.reset_camera(bounds=(0, X * h, 0, Y * h, 0, Z * h))
        p.camera.zoom(1.1)
        self.camera = preset

    def screenshot(self, path=None) -> np.ndarray:
        """The current image as (H, W, 3) uint8 (also saved to ``path`` if given)."""
        return self.plotter.screenshot(path, return_img=True)

    def close(self) -> None:
        self.plotter.close()
