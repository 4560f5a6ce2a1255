/* Entry of the modeler bundle: bpmn-js Modeler with the Camunda 7 (Platform) properties panel.
   esbuild turns this into webapp/static/vendor/modeler/modeler.bundle.js, an IIFE that sets
   window.KuratorModeler = { create(container, propertiesParent, options) }; webapp/static/modeler.js drives
   the page. The packages are pinned in package.json; build.sh installs them in a temporary directory. */
import BpmnModeler from "bpmn-js/lib/Modeler";
import {
  BpmnPropertiesPanelModule,
  BpmnPropertiesProviderModule,
  CamundaPlatformPropertiesProviderModule
} from "bpmn-js-properties-panel";
import CamundaBehaviorsModule from "camunda-bpmn-js-behaviors/lib/camunda-platform";
import camundaModdle from "camunda-bpmn-moddle/resources/camunda.json";
import RUSSIAN from "./translations-ru.js";

/* bpmn-js translate service: Russian where known, {placeholders} filled in as the default one does. */
function translate(template, replacements) {
  var text = Object.prototype.hasOwnProperty.call(RUSSIAN, template) ? RUSSIAN[template] : template;
  return text.replace(/{([^}]+)}/g, function (match, key) {
    return replacements && key in replacements ? replacements[key] : match;
  });
}

var TranslateModule = { translate: ["value", translate] };

/**
 * Create a modeler in `container` with the properties panel rendered into `propertiesParent`.
 * Extra bpmn-js options (e.g. keyboard binding) may be given in `options`.
 */
function create(container, propertiesParent, options) {
  return new BpmnModeler(Object.assign({
    container: container,
    propertiesPanel: { parent: propertiesParent },
    additionalModules: [
      BpmnPropertiesPanelModule,
      BpmnPropertiesProviderModule,
      CamundaPlatformPropertiesProviderModule,
      CamundaBehaviorsModule,
      TranslateModule
    ],
    moddleExtensions: { camunda: camundaModdle }
  }, options || {}));
}

window.KuratorModeler = { create: create, Modeler: BpmnModeler };
