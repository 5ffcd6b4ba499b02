// Name resolution: the parameters one operation uses (the registered ones, or those passed to it),
// checked against the shadows, with every parameter named for errors as well as it can be.
import { ParameterEntry, Parameter, ResolvedParameters, toEntries } from './parameters';
import type { RegisteredParameters } from './registered';

// Explicit parameters without names of their own are reported under the registered names.
function withRegisteredNames(entries: ParameterEntry[], registered: RegisteredParameters): ParameterEntry[] {
  return entries.map((e, i) => (e.name === undefined && i < registered.length ? { ...e, name: registered.name(i) } : e));
}

/** `parameters` if given, else the registered ones (which must still be alive), resolved for `operation`. */
export function resolveParameters(
  registered: RegisteredParameters,
  sizes: readonly number[],
  parameters: Iterable<Parameter> | undefined,
  operation: string,
): ResolvedParameters {
  const entries =
    parameters === undefined ? registered.deref(operation) : withRegisteredNames(toEntries(parameters, 'parameters'), registered);
  return new ResolvedParameters(entries, sizes, parameters === undefined ? 'the registered parameters' : 'parameters');
}
