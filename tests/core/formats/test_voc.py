from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boxloop.core.boxes import Box
from boxloop.core.detections import Detections
from boxloop.core.errors import ManifestError
from boxloop.core.formats.voc import detections_to_voc, voc_to_detections

from ._helpers import assert_same_boxes, pixel_detections

CLASS_MAP = {3: "cat", 17: "dog", 1000: "zebra"}  # non-contiguous ids
TALL = (300, 900)  # non-square


def box(x0: float, y0: float, x1: float, y1: float, c: int = 3, s: float | None = None) -> Box:
    return Box(x_min=x0, y_min=y0, x_max=x1, y_max=y1, class_id=c, score=s)


def voc_object(name: str, xmin: str, ymin: str, xmax: str, ymax: str, extra: str = "") -> str:
    return (
        f"<object><name>{name}</name><difficult>0</difficult>{extra}<bndbox><xmin>{xmin}</xmin>"
        f"<ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
    )


def voc_xml(*objects: str, size: tuple[str, str] = ("300", "900")) -> str:
    return (
        "<annotation><folder>VOC2007</folder><filename>000001.jpg</filename>"
        f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"
        f"{''.join(objects)}</annotation>"
    )


@pytest.mark.parametrize(
    ("objects", "expected_boxes"),
    [
        # no objects: an empty image
        ((), ()),
        # 1-based inclusive pixels: xmin - 1, xmax kept
        ((voc_object("cat", "48", "240", "195", "371"),), (box(47, 239, 195, 371),)),
        # the whole non-square image: 1..300 x 1..900
        ((voc_object("dog", "1", "1", "300", "900"),), (box(0, 0, 300, 900, 17),)),
        # zero-size box: xmax = xmin - 1
        ((voc_object("cat", "11", "21", "10", "20"),), (box(10, 20, 10, 20),)),
        # xmin = 0 from a 0-based tool is clipped onto the edge
        ((voc_object("cat", "0", "0", "10", "10"),), (box(0, 0, 10, 10),)),
        # fractional coordinates, and a prediction's score
        (
            (voc_object("zebra", "1.5", "2.25", "3.5", "4", "<score>0.5</score>"),),
            (box(0.5, 1.25, 3.5, 4, 1000, 0.5),),
        ),
        # difficult objects are kept
        (
            (voc_object("cat", "1", "1", "2", "2").replace("<difficult>0", "<difficult>1"),),
            (box(0, 0, 2, 2),),
        ),
        # many boxes, non-contiguous class ids, document order kept
        (
            tuple(
                voc_object(
                    CLASS_MAP[(3, 17, 1000)[i % 3]], "1", str(i * 40 + 1), "300", str(i * 40 + 30)
                )
                for i in range(20)
            ),
            tuple(box(0, i * 40, 300, i * 40 + 30, (3, 17, 1000)[i % 3]) for i in range(20)),
        ),
    ],
)
def test_voc_to_detections_reads_pixel_edges(objects, expected_boxes):
    file_name, detections = voc_to_detections(voc_xml(*objects), CLASS_MAP)
    assert file_name == "000001.jpg"
    assert_same_boxes(detections, Detections("000001.jpg", TALL, expected_boxes))


@pytest.mark.parametrize(
    "make_input",
    [
        # bytes with an XML declaration
        lambda text: ('<?xml version="1.0" encoding="utf-8"?>' + text).encode(),
        # a binary file object
        lambda text: io.BytesIO(text.encode()),
        # a text file object
        lambda text: io.StringIO(text),
    ],
)
def test_voc_to_detections_reads_bytes_and_files(make_input):
    _, detections = voc_to_detections(
        make_input(voc_xml(voc_object("cat", "1", "1", "5", "5"))), CLASS_MAP, image_id="rec-1"
    )
    assert_same_boxes(detections, Detections("rec-1", TALL, (box(0, 0, 5, 5),)))


@pytest.mark.parametrize(
    ("xml", "match"),
    [
        # not XML: the parser's line is reported
        ("<annotation>\n<filename>a.jpg</filename>\n<size>\n</annotation>", r"^a\.xml:4: "),
        # another root element
        ("<voc></voc>", "root element must be <annotation>"),
        # no size
        ("<annotation><filename>a.jpg</filename></annotation>", r"annotation\.size is missing"),
        # size 0, as some tools write before reading the image
        (voc_xml(size=("0", "900")), r"annotation\.size\.width must be a positive integer"),
        # unknown class name
        (
            voc_xml(voc_object("cat", "1", "1", "2", "2"), voc_object("bird", "1", "1", "2", "2")),
            r"annotation\.object\[1\]\.name 'bird' is not a known class",
        ),
        # non-numeric coordinate
        (
            voc_xml(voc_object("cat", "1", "1", "two", "2")),
            r"annotation\.object\[0\]\.bndbox\.xmax must be a number",
        ),
        # no bndbox
        (
            voc_xml("<object><name>cat</name></object>"),
            r"annotation\.object\[0\]\.bndbox is missing",
        ),
        # xmax before xmin - 1: negative width
        (
            voc_xml(voc_object("cat", "10", "1", "5", "2")),
            r"annotation\.object\[0\] .*x_max >= x_min",
        ),
        # x beyond the 300 px width (it would fit the 900 px height)
        (
            voc_xml(voc_object("cat", "1", "1", "600", "2")),
            r"annotation\.object\[0\]\.bndbox .* outside the 300x900 image",
        ),
        # score above 1
        (voc_xml(voc_object("cat", "1", "1", "2", "2", "<score>2</score>")), r"score"),
    ],
)
def test_voc_to_detections_raises_naming_the_field(xml, match):
    with pytest.raises(ManifestError, match=match):
        voc_to_detections(xml, CLASS_MAP, source="a.xml")


def test_detections_to_voc_writes_one_based_integers():
    detections = Detections(
        "img",
        TALL,
        (box(47, 239, 195, 371, 17), box(0, 0, 300, 900, 1000), box(10, 20, 10, 20, 3, 0.25)),
    )
    root = ET.fromstring(detections_to_voc(detections, CLASS_MAP, file_name="000001.jpg"))
    assert root.findtext("filename") == "000001.jpg"
    assert (root.findtext("size/width"), root.findtext("size/height")) == ("300", "900")
    rows = [
        (
            o.findtext("name"),
            *(o.findtext(f"bndbox/{t}") for t in ("xmin", "ymin", "xmax", "ymax")),
            o.findtext("score"),
        )
        for o in root.findall("object")
    ]
    assert rows == [
        # an ordinary box: xmin + 1
        ("dog", "48", "240", "195", "371", None),
        # the whole non-square image
        ("zebra", "1", "1", "300", "900", None),
        # zero-size box with a score
        ("cat", "11", "21", "10", "20", "0.25"),
    ]


def test_detections_to_voc_writes_an_empty_image():
    xml = detections_to_voc(Detections.empty("e", TALL), CLASS_MAP, file_name="e.jpg")
    root = ET.fromstring(xml)
    assert root.findall("object") == []


def test_detections_to_voc_raises_for_a_class_missing_from_the_map():
    detections = Detections("a", TALL, (box(0, 0, 1, 1, 4),))
    with pytest.raises(ManifestError, match=r"a\.jpg: boxes\[0\]\.class_id"):
        detections_to_voc(detections, CLASS_MAP, file_name="a.jpg")


def detections() -> st.SearchStrategy[Detections]:
    return pixel_detections("a.jpg", sorted(CLASS_MAP))


@settings(max_examples=150, deadline=None)
@given(detections())
def test_voc_round_trip_keeps_boxes(original):
    file_name, restored = voc_to_detections(
        detections_to_voc(original, CLASS_MAP, file_name="a.jpg"), CLASS_MAP
    )
    assert file_name == "a.jpg"
    assert_same_boxes(restored, original)


@pytest.mark.parametrize(
    "edge",
    [
        0.0546875,  # 1.0546875 - 1 rounds above 0.0546875 (hypothesis found it)
        2.0867089048268213e-16,  # (x + 1) - 1 gives 2.2e-16 > x
    ],
)
def test_voc_round_trip_keeps_zero_width_box_when_one_based_shift_rounds(edge):
    box = Box(x_min=0.0, y_min=edge, x_max=0.0, y_max=edge, class_id=3)
    original = Detections(image_id="a.jpg", image_wh=(1, 1), boxes=(box,))
    xml = detections_to_voc(original, {3: "c"}, file_name="a.jpg")
    _, parsed = voc_to_detections(xml, {3: "c"})
    assert parsed.boxes[0].y_min <= parsed.boxes[0].y_max
    assert parsed.boxes[0].y_min == pytest.approx(edge, abs=1e-9)
