"""The explorer's views: the kernel-free one's links and the live one's callbacks, without a browser."""
from dopatut.showing.drawing import render
from dopatut.showing.widgets import explorer_view, static_explorer
from explorer_models import explorer, models  # noqa: F401  (fixtures)


def test_static_explorer_links_sliders_to_precomputed_pictures(explorer):
    import ipywidgets as w
    explorer.silence("hidden2", 1)
    state = (explorer.digit_index, explorer.angle_deg, explorer.model_name, dict(explorer.silenced))
    box = static_explorer(explorer, [0, 1, 2], [0, 45], ["frozen", "lora"])
    assert (explorer.digit_index, explorer.angle_deg, explorer.model_name, explorer.silenced) == state
    model, (digit, angle), views = box.children[0], box.children[1].children, box.children[2]
    assert isinstance(views, w.Stack) and len(views.children) == 2
    assert all(len(d.children) == 2 for m in views.children for d in m.children)
    # every picture is the render of its own state
    explorer.clear_silenced()
    explorer.digit_index, explorer.angle_deg, explorer.model_name = 2, 45, "lora"
    assert views.children[1].children[2].children[1].value == render(explorer)
    links = {(type(l.source[0]).__name__, l.source[1], type(l.target[0]).__name__) for l in box.links}
    assert links == {("ToggleButtons", "index", "Stack"), ("IntSlider", "value", "Stack"),
                     ("SelectionSlider", "index", "Stack")}
    assert len(box.links) == 1 + 2 + 2 * 3
    assert digit.description == "digit"
    by_class = static_explorer(explorer, [0], [0], ["frozen"], digit_label="class")
    assert by_class.children[1].children[0].description == "class"


def test_live_view_ticks_silence_neurons(explorer):
    view = explorer_view(explorer, top_k=3)
    picture, ticks = view.children[3], view.children[5]
    before = picture.value
    neuron = explorer.top_neurons(1)[0][0]
    ticks.children[0].value = True  # what a click does
    assert explorer.silenced == {explorer.last_layer: {neuron}}
    assert picture.value != before
    model = view.children[2]
    model.value = "frozen"
    assert explorer.model_name == "frozen"
