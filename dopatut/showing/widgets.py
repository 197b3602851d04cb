"""The attribution explorer's two views, on top of an `AttributionExplorer` (dopatut.analysis.explorer):

    explorer = AttributionExplorer({"frozen": base, "dopamine 45°": dop45})
    explorer_view(explorer)          # live: Python callbacks, needs a kernel
    static_explorer(explorer, ...)   # precomputed pictures switched in the browser, no kernel

The pictures come from dopatut.showing.drawing. Widgets never train; the models are passed in.
"""
from __future__ import annotations

import torch

from .drawing import render
from ..analysis.explorer import AttributionExplorer


def explorer_view(explorer: AttributionExplorer, top_k: int = 8):
    """The live explorer: controls that set the state, a picture, and ticks to silence top neurons.
    Python callbacks: it responds in a running kernel (Jupyter, Colab), not on a static page."""
    import ipywidgets as w

    digit = w.BoundedIntText(explorer.digit_index, min=0, max=len(explorer.labels) - 1, description="digit #")
    label = w.Dropdown(options=list(range(10)), value=explorer.label, description="next a", layout={"width": "150px"})
    next_label, mistake = w.Button(description="next"), w.Button(description="next mistake")
    angle = w.FloatSlider(explorer.angle_deg, min=0, max=90, step=5, description="angle (°)")
    model = w.ToggleButtons(options=list(explorer.models), value=explorer.model_name, description="model")
    picture, ticks, status = w.Image(format="png"), w.VBox(), w.HTML()

    def refresh(*_):
        picture.value = render(explorer)
        boxes = []
        for neuron, value in explorer.top_neurons(top_k):
            box = w.Checkbox(neuron in explorer.silenced.get(explorer.last_layer, ()),
                             description=f"silence {explorer.last_layer} #{neuron} ({value:+.2f})", indent=False)
            box.observe(lambda change, n=neuron: toggle(n, change["new"]), "value")
            boxes.append(box)
        ticks.children = boxes
        p = explorer.probabilities()
        status.value = f"prediction {explorer.prediction} with p = {float(p.max()):.3f}; true label {explorer.label}"

    def toggle(neuron, on):
        (explorer.silence if on else explorer.unsilence)(explorer.last_layer, neuron)
        refresh()

    def set_state(**kwargs):
        for key, value in kwargs.items():
            setattr(explorer, key, value)
        digit.value = explorer.digit_index
        refresh()

    digit.observe(lambda c: set_state(digit_index=c["new"]), "value")
    angle.observe(lambda c: set_state(angle_deg=c["new"]), "value")
    model.observe(lambda c: set_state(model_name=c["new"]), "value")
    next_label.on_click(lambda _: set_state(digit_index=explorer.next_digit(label.value)))
    mistake.on_click(lambda _: set_state(digit_index=explorer.next_mistake()))
    refresh()
    return w.VBox([w.HBox([digit, label, next_label, mistake]), angle, model, picture, status, ticks])


def static_explorer(explorer: AttributionExplorer, digit_indices, angles_deg, model_names=None,
                    digit_label: str = "digit"):
    """A kernel-free explorer: one picture per (model, digit, angle), precomputed, in nested `Stack`s
    whose selected child follows the sliders through `jslink`, so the page's JavaScript switches them.
    The digit slider indexes `digit_indices` and is labelled `digit_label` (say "class" where the k-th
    digit is the first test digit of class k)."""
    import ipywidgets as w

    model_names = list(model_names or explorer.models)
    state = (explorer.digit_index, explorer.angle_deg, explorer.model_name, explorer.silenced)
    explorer.silenced = {}
    model = w.ToggleButtons(options=model_names, description="model")
    digit = w.IntSlider(0, min=0, max=len(digit_indices) - 1, description=digit_label)
    angle = w.SelectionSlider(options=[f"{a:g}°" for a in angles_deg], description="angle")
    links, per_model, threads = [], [], torch.get_num_threads()
    torch.set_num_threads(1)  # one input at a time: threads only add overhead, the more so on a busy machine
    try:
        for name in model_names:
            per_digit = []
            for i in digit_indices:
                pictures = []
                for a in angles_deg:
                    explorer.digit_index, explorer.angle_deg, explorer.model_name = i, a, name
                    pictures.append(w.Image(value=render(explorer), format="png"))
                per_digit.append(w.Stack(pictures, selected_index=0))
                links.append(w.jslink((angle, "index"), (per_digit[-1], "selected_index")))
            per_model.append(w.Stack(per_digit, selected_index=0))
            links.append(w.jslink((digit, "value"), (per_model[-1], "selected_index")))
    finally:
        torch.set_num_threads(threads)
        explorer.digit_index, explorer.angle_deg, explorer.model_name, explorer.silenced = state
    views = w.Stack(per_model, selected_index=0)
    links.append(w.jslink((model, "index"), (views, "selected_index")))
    box = w.VBox([model, w.HBox([digit, angle]), views])
    box.links = links  # keep the links alive with the view
    return box
