"""BatchML general and site recipes: GRecipe / GRecipeInformation ↔ isa95.general_recipe.

Also the general recipe's libraries (ProcessElementLibrary,
ResourceConstraintLibrary) and its bare ProcessElement and ResourceConstraint.

Read from the generated bindings through :func:`isa95.b2mml.mapping.trees.from_binding`
and written through :func:`isa95.b2mml.mapping.trees.fill`, as the other nouns:
the recipe's header, formula (process inputs, outputs, intermediates with
their materials and amounts; process element parameters), the process
procedure (process elements nested to any depth with their materials,
directed links, procedure chart elements, parameters, resource constraints
and other information) and the recipe's own resource constraints and other
information. Every value keeps its text, DataType, unit and key as written;
every Description is kept. What no model field carries (a
GRecipeInformation's HierarchyScope, attributes such as an enumeration's
``OtherValue`` or an identifier's ``schemeID``) is listed in ``unmapped`` and
stays on the binding.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from isa95.b2mml.mapping.trees import (
    NORMALISED,
    V0600,
    Tracked,
    _get,
    _list,
    _model,
    _parse_time,
    _put,
    _text,
    _texts,
    _time,
    _unread,
    _where,
)
from isa95.errors import B2MMLError
from isa95.general_recipe import (
    ConstraintType,
    DirectedLink,
    GeneralRecipe,
    GeneralRecipeFormula,
    GeneralRecipeHeader,
    GeneralRecipeInformation,
    HeaderProperty,
    MaterialList,
    OtherInformation,
    ParameterType,
    ProcedureChartElement,
    ProcessElement,
    ProcessElementLibrary,
    ProcessElementParameter,
    RecipeMaterial,
    RecipeProduct,
    RecipeValue,
    ResourceConstraint,
    ResourceConstraintLibrary,
    ResourceConstraintProperty,
)

_V0701_ONLY_PARAMETER_TYPES = {
    ParameterType.CONSTANT,
    ParameterType.EQUATION,
    ParameterType.REFERENCE,
}

# ------------------------------------------------------------------ reading


def _value(t: Any, where: str, string: str = "ValueString") -> RecipeValue:
    """A ValueType (or QuantityValueType with ``string="QuantityString"``) as written.

    An empty DataType (only a nil one is schema-valid) is no DataType: it is
    listed in ``unmapped`` and kept on the binding.
    """
    data_type = _get(t, "DataType")
    if data_type == "":
        data_type = None
        _unread(t, "DataType")
    return _model(
        lambda: RecipeValue(
            value=_get(t, string) or "",
            data_type=data_type,
            unit=_get(t, "UnitOfMeasure"),
            key=_get(t, "Key"),
        ),
        where,
        t,
    )


def _values(t: dict[str, Any], key: str) -> list[RecipeValue]:
    return [_value(v, _where(v, key)) for v in _list(t, key)]


def _material(t: dict[str, Any]) -> RecipeMaterial:
    amount = t.get("Amount")
    return _model(
        lambda: RecipeMaterial(
            id=_get(t, "ID"),
            descriptions=_texts(t, "Description"),
            material_id=_get(t, "MaterialID"),
            order=_get(t, "Order"),
            amount=None
            if amount is None
            else _value(amount, _where(amount, "Amount"), "QuantityString"),
        ),
        _where(t, "Material"),
        t,
    )


def _materials(t: Any) -> MaterialList | None:
    if t is None:
        return None
    return _model(
        lambda: MaterialList(
            id=_get(t, "ID"),
            descriptions=_texts(t, "Description"),
            materials_type=_get(t, "MaterialsType"),
            materials=[_material(m) for m in _list(t, "Material")],
        ),
        _where(t, "Materials"),
        t,
    )


def _parameter(t: dict[str, Any]) -> ProcessElementParameter:
    return _model(
        lambda: ProcessElementParameter(
            id=_get(t, "ID"),
            descriptions=_texts(t, "Description"),
            parameter_types=[ParameterType(x) for x in _texts(t, "ProcessElementParameterType")],
            parameters=[_parameter(p) for p in _list(t, "ProcessElementParameter")],
            values=_values(t, "Value"),
        ),
        _where(t, "ProcessElementParameter"),
        t,
    )


def _constraint(t: dict[str, Any]) -> ResourceConstraint:
    def prop(p: dict[str, Any]) -> ResourceConstraintProperty:
        return _model(
            lambda: ResourceConstraintProperty(
                id=_get(p, "ID") or "",
                descriptions=_texts(p, "Description"),
                values=_values(p, "Value"),
            ),
            _where(p, "ResourceConstraintProperty"),
            p,
        )

    return _model(
        lambda: ResourceConstraint(
            id=_get(t, "ConstraintID"),
            descriptions=_texts(t, "Description"),
            constraint_types=[ConstraintType(x) for x in _texts(t, "ConstraintType")],
            life_cycle_state=_get(t, "LifeCycleState"),
            ranges=_values(t, "Range"),
            properties=[prop(p) for p in _list(t, "ResourceConstraintProperty")],
        ),
        _where(t, "ResourceConstraint", "ConstraintID"),
        t,
    )


def _other(t: dict[str, Any]) -> OtherInformation:
    return _model(
        lambda: OtherInformation(
            id=_get(t, "OtherInfoID"),
            descriptions=_texts(t, "Description"),
            values=_values(t, "OtherValue"),
        ),
        _where(t, "OtherInformation", "OtherInfoID"),
        t,
    )


def _link(t: dict[str, Any]) -> DirectedLink:
    return _model(
        lambda: DirectedLink(
            id=_get(t, "ID"),
            descriptions=_texts(t, "Description"),
            from_id=_get(t, "FromID"),
            to_id=_get(t, "ToID"),
        ),
        _where(t, "DirectedLink"),
        t,
    )


def _chart_element(t: dict[str, Any]) -> ProcedureChartElement:
    return _model(
        lambda: ProcedureChartElement(
            id=_get(t, "ID"),
            label=_get(t, "Label"),
            descriptions=_texts(t, "Description"),
            element_type=_get(t, "ProcedureChartElementType"),
        ),
        _where(t, "ProcedureChartElement"),
        t,
    )


def _element(t: dict[str, Any]) -> ProcessElement:
    return _model(
        lambda: ProcessElement(
            id=_get(t, "ID"),
            descriptions=_texts(t, "Description"),
            element_type=_get(t, "ProcessElementType"),
            life_cycle_state=_get(t, "LifeCycleState"),
            sequence_order=_get(t, "SequenceOrder"),
            sequence_path=_get(t, "SequencePath"),
            materials=[m for m in (_materials(x) for x in _list(t, "Materials")) if m],
            links=[_link(x) for x in _list(t, "DirectedLink")],
            chart_elements=[_chart_element(x) for x in _list(t, "ProcedureChartElement")],
            elements=[_element(x) for x in _list(t, "ProcessElement")],
            parameters=[_parameter(x) for x in _list(t, "ProcessElementParameter")],
            resource_constraints=[_constraint(x) for x in _list(t, "ResourceConstraint")],
            other_information=[_other(x) for x in _list(t, "OtherInformation")],
        ),
        _where(t, "ProcessElement"),
        t,
    )


def _formula(t: Any) -> GeneralRecipeFormula | None:
    if t is None:
        return None
    return _model(
        lambda: GeneralRecipeFormula(
            descriptions=_texts(t, "Description"),
            inputs=_materials(t.get("ProcessInputs")),
            outputs=_materials(t.get("ProcessOutputs")),
            intermediates=_materials(t.get("ProcessIntermediates")),
            parameters=[_parameter(x) for x in _list(t, "ProcessElementParameter")],
        ),
        _where(t, "Formula"),
        t,
    )


def _stripped_id(text: str, where: str) -> str:
    """An identifier read without the blanks around it (noted, as ``_get`` does)."""
    if text != text.strip() and text.strip():
        notes = NORMALISED.get()
        if notes is not None:
            notes.append(f"{where}: {text!r} read as {text.strip()!r}")
        return text.strip()
    return text


def _header_sequence(t: dict[str, Any]) -> list[tuple[str, Any]]:
    """The header's children as ``(name, tree)`` in document order.

    The header repeats a group (ProductID, Description*, ProductName?,
    BatchSize?) after its own Descriptions: which Description belongs to which
    product is given only by the order of the elements, so it is taken from
    the element itself.
    """
    node = t.node if isinstance(t, Tracked) else None
    if node is None:  # a tree not read from a document: slot order
        return [(name, item) for name in t if not name.startswith("@") for item in _list(t, name)]
    seen: dict[str, int] = {}
    ordered = []
    for child in node.element:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        index = seen.get(name, 0)
        seen[name] = index + 1
        ordered.append((name, _list(t, name)[index]))
    return ordered


def _header(t: Any) -> GeneralRecipeHeader | None:
    if t is None:
        return None
    where = _where(t, "Header")
    descriptions: list[str] = []
    products: list[dict[str, Any]] = []
    for name, item in _header_sequence(t):
        if name == "ProductID":
            product_id = _stripped_id(_text(item) or "", f"{t.path}/ProductID[{len(products)}]")
            products.append({"product_id": product_id, "descriptions": [], "tree": item})
        elif name == "Description":
            (products[-1]["descriptions"] if products else descriptions).append(_text(item) or "")
        elif name == "ProductName" and products:
            products[-1]["product_name"] = _text(item)
        elif name == "BatchSize" and products:
            products[-1]["batch_size"] = _value(item, f"{where}/BatchSize")

    def product(fields: dict[str, Any]) -> RecipeProduct:
        tree = fields.pop("tree")
        return _model(lambda: RecipeProduct(**fields), f"{where}/ProductID", tree)

    prop = t.get("HeaderProperty")
    return _model(
        lambda: GeneralRecipeHeader(
            descriptions=descriptions,
            derived_from_id=_get(t, "DerivedFromID"),
            products=[product(p) for p in products],
            effective_date=_parse_time(_get(t, "EffectiveDate"), f"{where}/EffectiveDate"),
            expiration_date=_parse_time(_get(t, "ExpirationDate"), f"{where}/ExpirationDate"),
            header_property=None
            if prop is None
            else _model(
                lambda: HeaderProperty(
                    id=_get(prop, "ID") or "",
                    descriptions=_texts(prop, "Description"),
                    values=_values(prop, "Value"),
                ),
                _where(prop, "HeaderProperty"),
                prop,
            ),
        ),
        where,
        t,
    )


def _recipe_from_tree(t: dict[str, Any], version: str) -> GeneralRecipe:
    procedure = t.get("ProcessProcedure")
    return _model(
        lambda: GeneralRecipe(
            id=_get(t, "ID"),
            descriptions=_texts(t, "Description"),
            recipe_type=_get(t, "GRecipeType"),
            life_cycle_state=_get(t, "LifeCycleState"),
            header=_header(t.get("Header")),
            formula=_formula(t.get("Formula")),
            procedure=None if procedure is None else _element(procedure),
            resource_constraints=[_constraint(x) for x in _list(t, "ResourceConstraint")],
            other_information=[_other(x) for x in _list(t, "OtherInformation")],
        ),
        _where(t, "GRecipe"),
        t,
    )


def _information_from_tree(t: dict[str, Any], version: str) -> GeneralRecipeInformation:
    where = _where(t, "GRecipeInformation")
    return _model(
        lambda: GeneralRecipeInformation(
            id=_get(t, "ID"),
            descriptions=_texts(t, "Description"),
            published_date=_parse_time(_get(t, "PublishedDate"), f"{where}/PublishedDate"),
            recipes=[_recipe_from_tree(r, version) for r in _list(t, "Recipe")],
        ),
        where,
        t,
    )


def _element_from_tree(t: dict[str, Any], version: str) -> ProcessElement:
    """A bare ProcessElement document."""
    return _element(t)


def _constraint_from_tree(t: dict[str, Any], version: str) -> ResourceConstraint:
    """A bare ResourceConstraint document."""
    return _constraint(t)


def _element_library_from_tree(t: dict[str, Any], version: str) -> ProcessElementLibrary:
    where = _where(t, "ProcessElementLibrary")
    return _model(
        lambda: ProcessElementLibrary(
            id=_get(t, "ID"),
            descriptions=_texts(t, "Description"),
            published_date=_parse_time(_get(t, "PublishedDate"), f"{where}/PublishedDate"),
            elements=[_element(x) for x in _list(t, "ProcessElementSpec")],
        ),
        where,
        t,
    )


def _constraint_library_from_tree(t: dict[str, Any], version: str) -> ResourceConstraintLibrary:
    where = _where(t, "ResourceConstraintLibrary")
    return _model(
        lambda: ResourceConstraintLibrary(
            id=_get(t, "ID"),
            descriptions=_texts(t, "Description"),
            published_date=_parse_time(_get(t, "PublishedDate"), f"{where}/PublishedDate"),
            constraints=[_constraint(x) for x in _list(t, "ResourceConstraintSpec")],
        ),
        where,
        t,
    )


# ------------------------------------------------------------------ writing


def _value_tree(v: RecipeValue, string: str = "ValueString") -> dict[str, Any]:
    tree: dict[str, Any] = {string: v.value}
    _put(tree, "DataType", v.data_type)
    _put(tree, "UnitOfMeasure", v.unit)
    _put(tree, "Key", v.key)
    return tree


def _materials_tree(m: MaterialList | None) -> dict[str, Any] | None:
    if m is None:
        return None
    tree: dict[str, Any] = {}
    _put(tree, "ID", m.id)
    _put(tree, "Description", list(m.descriptions))
    _put(tree, "MaterialsType", None if m.materials_type is None else m.materials_type.value)
    materials = []
    for x in m.materials:
        mt: dict[str, Any] = {}
        _put(mt, "ID", x.id)
        _put(mt, "Description", list(x.descriptions))
        _put(mt, "MaterialID", x.material_id)
        _put(mt, "Order", x.order)
        _put(mt, "Amount", None if x.amount is None else _value_tree(x.amount, "QuantityString"))
        materials.append(mt)
    _put(tree, "Material", materials)
    return tree


def _parameter_tree(p: ProcessElementParameter, version: str) -> dict[str, Any]:
    if version == V0600:
        if p.parameters:
            raise B2MMLError(
                f"process element parameter {p.id!r}: V0600 has no nested "
                "ProcessElementParameter (write it as V0701)"
            )
        older = [t.value for t in p.parameter_types if t in _V0701_ONLY_PARAMETER_TYPES]
        if older:
            raise B2MMLError(
                f"process element parameter {p.id!r}: parameter type {older[0]!r} is V0701 only"
            )
    tree: dict[str, Any] = {}
    _put(tree, "ID", p.id)
    _put(tree, "Description", list(p.descriptions))
    _put(tree, "ProcessElementParameterType", [t.value for t in p.parameter_types])
    _put(tree, "ProcessElementParameter", [_parameter_tree(x, version) for x in p.parameters])
    _put(tree, "Value", [_value_tree(v) for v in p.values])
    return tree


def _constraint_tree(c: ResourceConstraint) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    _put(tree, "ConstraintID", c.id)
    _put(tree, "Description", list(c.descriptions))
    _put(tree, "ConstraintType", [t.value for t in c.constraint_types])
    _put(tree, "LifeCycleState", None if c.life_cycle_state is None else c.life_cycle_state.value)
    _put(tree, "Range", [_value_tree(v) for v in c.ranges])
    props = []
    for p in c.properties:
        pt: dict[str, Any] = {"ID": p.id}
        _put(pt, "Description", list(p.descriptions))
        _put(pt, "Value", [_value_tree(v) for v in p.values])
        props.append(pt)
    _put(tree, "ResourceConstraintProperty", props)
    return tree


def _other_tree(o: OtherInformation) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    _put(tree, "OtherInfoID", o.id)
    _put(tree, "Description", list(o.descriptions))
    _put(tree, "OtherValue", [_value_tree(v) for v in o.values])
    return tree


def _element_tree(e: ProcessElement, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    _put(tree, "ID", e.id)
    _put(tree, "Description", list(e.descriptions))
    _put(tree, "ProcessElementType", None if e.element_type is None else e.element_type.value)
    _put(tree, "LifeCycleState", None if e.life_cycle_state is None else e.life_cycle_state.value)
    _put(tree, "SequenceOrder", None if e.sequence_order is None else e.sequence_order.value)
    _put(tree, "SequencePath", e.sequence_path)
    _put(tree, "Materials", [_materials_tree(m) for m in e.materials])
    links = []
    for link in e.links:
        lt: dict[str, Any] = {}
        _put(lt, "ID", link.id)
        _put(lt, "Description", list(link.descriptions))
        _put(lt, "FromID", link.from_id)
        _put(lt, "ToID", link.to_id)
        links.append(lt)
    _put(tree, "DirectedLink", links)
    charts = []
    for c in e.chart_elements:
        ct: dict[str, Any] = {}
        _put(ct, "ID", c.id)
        _put(ct, "Label", c.label)
        _put(ct, "Description", list(c.descriptions))
        _put(
            ct,
            "ProcedureChartElementType",
            None if c.element_type is None else c.element_type.value,
        )
        charts.append(ct)
    _put(tree, "ProcedureChartElement", charts)
    _put(tree, "ProcessElement", [_element_tree(x, version) for x in e.elements])
    _put(tree, "ProcessElementParameter", [_parameter_tree(p, version) for p in e.parameters])
    _put(tree, "ResourceConstraint", [_constraint_tree(c) for c in e.resource_constraints])
    _put(tree, "OtherInformation", [_other_tree(o) for o in e.other_information])
    return tree


def _header_tree(h: GeneralRecipeHeader | None) -> dict[str, Any] | None:
    """The header's children in order (``#sequence``): its descriptions, then each
    product's ProductID, Description*, ProductName, BatchSize (a repeated group
    the writer could not order by element name alone)."""
    if h is None:
        return None
    sequence: list[tuple[str, Any]] = [("Description", d) for d in h.descriptions]
    if h.derived_from_id is not None:
        sequence.append(("DerivedFromID", h.derived_from_id))
    for product in h.products:
        sequence.append(("ProductID", product.product_id))
        sequence += [("Description", d) for d in product.descriptions]
        if product.product_name is not None:
            sequence.append(("ProductName", product.product_name))
        if product.batch_size is not None:
            sequence.append(("BatchSize", _value_tree(product.batch_size)))
    for name, when in (("EffectiveDate", h.effective_date), ("ExpirationDate", h.expiration_date)):
        if when is not None:
            sequence.append((name, _time(when)))
    if h.header_property is not None:
        prop: dict[str, Any] = {"ID": h.header_property.id}
        _put(prop, "Description", list(h.header_property.descriptions))
        _put(prop, "Value", [_value_tree(v) for v in h.header_property.values])
        sequence.append(("HeaderProperty", prop))
    return {"#sequence": sequence}


def _recipe_to_tree(r: GeneralRecipe, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    _put(tree, "ID", r.id)
    _put(tree, "Description", list(r.descriptions))
    _put(tree, "GRecipeType", None if r.recipe_type is None else r.recipe_type.value)
    _put(tree, "LifeCycleState", None if r.life_cycle_state is None else r.life_cycle_state.value)
    _put(tree, "Header", _header_tree(r.header))
    if r.formula is not None:
        f = r.formula
        ft: dict[str, Any] = {}
        _put(ft, "Description", list(f.descriptions))
        _put(ft, "ProcessInputs", _materials_tree(f.inputs))
        _put(ft, "ProcessOutputs", _materials_tree(f.outputs))
        _put(ft, "ProcessIntermediates", _materials_tree(f.intermediates))
        _put(ft, "ProcessElementParameter", [_parameter_tree(p, version) for p in f.parameters])
        tree["Formula"] = ft
    _put(
        tree,
        "ProcessProcedure",
        None if r.procedure is None else _element_tree(r.procedure, version),
    )
    _put(tree, "ResourceConstraint", [_constraint_tree(c) for c in r.resource_constraints])
    _put(tree, "OtherInformation", [_other_tree(o) for o in r.other_information])
    return tree


def _information_to_tree(i: GeneralRecipeInformation, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    _put(tree, "ID", i.id)
    _put(tree, "Description", list(i.descriptions))
    _put(tree, "PublishedDate", _time(i.published_date))
    _put(tree, "Recipe", [_recipe_to_tree(r, version) for r in i.recipes])
    return tree


def _element_to_tree(e: ProcessElement, version: str) -> dict[str, Any]:
    """A bare ProcessElement document."""
    return _element_tree(e, version)


def _constraint_to_tree(c: ResourceConstraint, version: str) -> dict[str, Any]:
    """A bare ResourceConstraint document."""
    return _constraint_tree(c)


def _element_library_to_tree(library: ProcessElementLibrary, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    _put(tree, "ID", library.id)
    _put(tree, "Description", list(library.descriptions))
    _put(tree, "PublishedDate", _time(library.published_date))
    _put(tree, "ProcessElementSpec", [_element_tree(e, version) for e in library.elements])
    return tree


def _constraint_library_to_tree(library: ResourceConstraintLibrary, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    _put(tree, "ID", library.id)
    _put(tree, "Description", list(library.descriptions))
    _put(tree, "PublishedDate", _time(library.published_date))
    _put(tree, "ResourceConstraintSpec", [_constraint_tree(c) for c in library.constraints])
    return tree
